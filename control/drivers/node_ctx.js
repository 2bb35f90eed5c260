// node_ctx.js - the long-lived Node.js interpreter of one sbxfs context.
//
// Started as: bash -c 'exec 3<&0 0</dev/null; exec node "$0"' node_ctx.js, so
// the commands come on fd 3 and the code's stdin is /dev/null. Protocol as in
// python_ctx.py (docs/execution.md, control/ctx_proto.h); Node sends no
// figures, so its end frame on stderr is "EXIT RESULT_LEN 0" and the result's
// bytes. Code runs in this process's global
// context with vm.runInThisContext, so globals, top-level let/const/class,
// functions and required modules persist. Code with a top-level `await` is
// run inside an async function whose top-level declarations are made global.
'use strict';
const fs = require('fs');
const vm = require('vm');
const util = require('util');
const Module = require('module');

const RESULT_MAX = 1 << 20;
globalThis.require = Module.createRequire(process.cwd() + '/');
globalThis.module = { exports: {} };
globalThis.exports = globalThis.module.exports;
globalThis.__filename = process.cwd() + '/[context]';
globalThis.__dirname = process.cwd();

function writeAll(fd, buf) {
	let off = 0;
	while (off < buf.length) {
		try {
			off += fs.writeSync(fd, buf, off, buf.length - off);
		} catch (e) {
			if (e.code !== 'EAGAIN') throw e;
		}
	}
}

function report(e) {
	let text;
	try {
		text = (e && e.stack) ? String(e.stack) : 'Uncaught ' + util.inspect(e);
		// The driver's own frames say nothing about the code that failed.
		text = text.split('\n').filter((l) => !/^\s+at .*(node_ctx\.js|node:vm|node:internal|node:events|<anonymous>\))/.test(l)).join('\n');
	} catch (_) {
		text = 'Uncaught exception';
	}
	writeAll(2, Buffer.from(text + '\n'));
}

process.on('uncaughtException', report);
process.on('unhandledRejection', report);

const IDENT = /^[A-Za-z_$][\w$]*/;

// Rewrites top-level declarations of code that uses `await` so they outlive the
// async wrapper: `const x = ...` becomes `x = ...` with `var x` declared first,
// `class C` becomes `C = class C`, functions are copied to globalThis. Only
// statements at nesting depth 0 are touched; strings and comments are skipped.
function asyncWrap(code) {
	const names = new Set();
	const funcs = [];
	let out = '';
	let depth = 0;
	let atStart = true;
	let i = 0;
	while (i < code.length) {
		const c = code[i];
		if (c === '"' || c === "'" || c === '`') {
			let j = i + 1;
			while (j < code.length && code[j] !== c) {
				if (code[j] === '\\')
					j++;
				j++;
			}
			out += code.slice(i, j + 1);
			i = j + 1;
			atStart = false;
			continue;
		}
		if (c === '/' && code[i + 1] === '/') {
			const j = code.indexOf('\n', i);
			const stop = j < 0 ? code.length : j;
			out += code.slice(i, stop);
			i = stop;
			continue;
		}
		if (c === '/' && code[i + 1] === '*') {
			const j = code.indexOf('*/', i + 2);
			const stop = j < 0 ? code.length : j + 2;
			out += code.slice(i, stop);
			i = stop;
			continue;
		}
		if (depth === 0 && atStart && /[A-Za-z_$]/.test(c)) {
			const rest = code.slice(i);
			let m = rest.match(/^(const|let|var)\s+([A-Za-z_$][\w$]*)/);
			if (m) {
				names.add(m[2]);
				out += m[2];
				i += m[0].length;
				atStart = false;
				continue;
			}
			m = rest.match(/^class\s+([A-Za-z_$][\w$]*)/);
			if (m) {
				names.add(m[1]);
				out += m[1] + ' = ' + m[0];
				i += m[0].length;
				atStart = false;
				continue;
			}
			m = rest.match(/^(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)/);
			if (m)
				funcs.push(m[1]);
			m = rest.match(IDENT);
			out += m[0];
			i += m[0].length;
			atStart = false;
			continue;
		}
		if ('([{'.includes(c))
			depth++;
		else if (')]}'.includes(c))
			depth = Math.max(0, depth - 1);
		if (c === ';' || c === '\n' || (c === '}' && depth === 0))
			atStart = true;
		else if (!/\s/.test(c))
			atStart = false;
		out += c;
		i++;
	}
	const decl = names.size ? 'var ' + Array.from(names).join(', ') + ';\n' : '';
	const hoist = funcs.map((f) => 'globalThis.' + f + ' = ' + f + ';').join(' ');
	return { decl, body: '(async () => { ' + hoist + '\n' + out + '\n})()' };
}

async function execute(code, serial) {
	const filename = 'run-' + serial + '.js';
	let script;
	try {
		script = new vm.Script(code, { filename });
	} catch (e) {
		if (!(e instanceof SyntaxError) || !/\bawait\b/.test(code)) {
			report(e);
			return { exit: 1 };
		}
		let w;
		try {
			w = asyncWrap(code);
			if (w.decl)
				vm.runInThisContext(w.decl, { filename });
			script = new vm.Script(w.body, { filename });
		} catch (e2) {
			report(e);
			return { exit: 1 };
		}
		try {
			await script.runInThisContext();
			return { exit: 0 };
		} catch (e3) {
			report(e3);
			return { exit: 1 };
		}
	}
	try {
		const value = script.runInThisContext();
		if (value === undefined)
			return { exit: 0 };
		globalThis._ = value;
		let text = Buffer.from(util.inspect(value));
		if (text.length > RESULT_MAX) {
			const cut = Buffer.from(text.subarray(0, RESULT_MAX).toString().replace(/\uFFFD$/, ''));
			text = Buffer.concat([cut, Buffer.from('\n[sbxfs: result cut at ' + RESULT_MAX + ' bytes]')]);
		}
		return { exit: 0, result: text };
	} catch (e) {
		report(e);
		return { exit: 1 };
	}
}

let pending = Buffer.alloc(0);
let busy = false;
let serial = 0;

function nextCommand() {
	const nl = pending.indexOf(10);
	if (nl < 0)
		return null;
	const [nonce, codeLen, inLen] = pending.subarray(0, nl).toString().split(' ');
	const need = nl + 1 + Number(codeLen) + Math.max(Number(inLen), 0);
	if (pending.length < need)
		return null;
	const code = pending.subarray(nl + 1, nl + 1 + Number(codeLen)).toString();
	pending = pending.subarray(need);
	return { nonce, code };
}

async function pump() {
	if (busy)
		return;
	busy = true;
	for (let cmd = nextCommand(); cmd; cmd = nextCommand()) {
		serial++;
		const r = await execute(cmd.code, serial);
		const result = r.result || Buffer.alloc(0);
		/* stdout's end first, then stderr's: the daemon waits for both */
		writeAll(1, Buffer.from('\x1eSBXFS' + cmd.nonce + ':\n'));
		writeAll(2, Buffer.concat([Buffer.from('\x1eSBXFS' + cmd.nonce + ':' + (r.exit & 255) + ' ' +
			result.length + ' 0\n'), result]));
	}
	busy = false;
}

const input = new (require('net').Socket)({ fd: 3, readable: true, writable: false });
input.on('data', (chunk) => {
	pending = Buffer.concat([pending, chunk]);
	pump();
});
input.on('end', () => process.exit(0));
