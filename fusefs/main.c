/* main.c - placeholder entry point while the FUSE layer is written. */
#include <stdio.h>

int main(void)
{
	fputs("sbxfs: not built yet\n", stderr);
	return 1;
}
