#!/usr/bin/env python3
"""A stand-in for api.steampowered.com and Steam's workshop file CDN on the
system test's "internet" host (192.0.2.2). It answers from the recorded real
responses in crates/steam-api/tests/fixtures (see the README there for their
provenance), with `file_url` pointing back at this server and the item's
size cut to 40,000 bytes; files are served as that many bytes.

  fake_steam.py <fixtures dir> <bind address> <port>
"""

import http.server
import json
import sys
import urllib.parse

FIXTURES, HOST, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
SIZE = 40000


def load(name):
    with open(f"{FIXTURES}/{name}") as f:
        return json.load(f)


DETAILS = load("published_file_details_l4d2.json")["response"]["publishedfiledetails"][0]
DETAILS["file_size"] = str(SIZE)
DETAILS["file_url"] = f"http://{HOST}:{PORT}/files/{DETAILS['publishedfileid']}"
NOT_A_COLLECTION = load("collection_details_not_a_collection.json")["response"]["collectiondetails"][0]


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def ids(self, form, count_key):
        n = int(form.get(count_key, ["0"])[0])
        return [form.get(f"publishedfileids[{i}]", [""])[0] for i in range(n)]

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        path = self.path.rstrip("/")
        if path.endswith("ISteamRemoteStorage/GetPublishedFileDetails/v1"):
            items = []
            for i in self.ids(form, "itemcount"):
                items.append(DETAILS if i == DETAILS["publishedfileid"] else {"publishedfileid": i, "result": 9})
            self.reply(200, {"response": {"result": 1, "resultcount": len(items), "publishedfiledetails": items}})
        elif path.endswith("ISteamRemoteStorage/GetCollectionDetails/v1"):
            items = [dict(NOT_A_COLLECTION, publishedfileid=i) for i in self.ids(form, "collectioncount")]
            self.reply(200, {"response": {"result": 1, "resultcount": 0, "collectiondetails": items}})
        else:
            self.reply(404, {"error": "unknown endpoint"})

    def do_GET(self):
        if self.path == f"/files/{DETAILS['publishedfileid']}":
            self.reply(200, b"VPK" + b"\0" * (SIZE - 3), "application/octet-stream")
        else:
            self.reply(404, {"error": "not found"})


http.server.ThreadingHTTPServer((HOST, PORT), Handler).serve_forever()
