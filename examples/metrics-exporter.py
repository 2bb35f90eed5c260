#!/usr/bin/env python3
"""metrics-exporter.py - serves MOUNT/metrics over HTTP for a Prometheus scrape.

    python3 examples/metrics-exporter.py /mnt/sbxfs 9469 &
    curl -s localhost:9469/metrics | head

and in prometheus.yml:

    scrape_configs:
      - job_name: sbxfs
        static_configs: [{targets: ['localhost:9469']}]

The file is made when it is opened and has no size before that, so it is read
whole at each scrape (a static file server would send an empty body).
"""
import http.server
import sys

MOUNT = sys.argv[1] if len(sys.argv) > 1 else "/mnt/sbxfs"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 9469


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with open(MOUNT + "/metrics", "rb") as f:
                body = f.read()
        except OSError as e:
            self.send_error(503, "cannot read %s/metrics: %s" % (MOUNT, e.strerror))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
