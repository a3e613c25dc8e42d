#!/usr/bin/env python3
"""Serves www/ on 127.0.0.1 with the right MIME types (application/wasm, text/javascript) and the
page's Content-Security-Policy also sent as a header, so it covers the Web Worker too.

Usage: python3 tools/serve.py [--port PORT] [--root DIR]   (port 0 picks a free port)
Prints one line "serving http://127.0.0.1:PORT/" once it is listening.
"""

import argparse
import functools
import http.server
import pathlib
import sys

# Must match the <meta http-equiv="Content-Security-Policy"> in www/index.html.
CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; "
    "connect-src 'self'; img-src 'self' blob: data:; style-src 'self'"
)


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".css": "text/css",
        ".html": "text/html; charset=utf-8",
        ".json": "application/json",
    }

    def end_headers(self):
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, fmt, *args):
        sys.stderr.write("serve: " + (fmt % args) + "\n")


def main():
    root = pathlib.Path(__file__).resolve().parent.parent / "www"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--root", default=str(root))
    args = parser.parse_args()
    handler = functools.partial(Handler, directory=args.root)
    with http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler) as httpd:
        print(f"serving http://127.0.0.1:{httpd.server_address[1]}/", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
