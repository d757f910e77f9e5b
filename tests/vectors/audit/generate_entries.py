#!/usr/bin/env python3
"""Writes entries.json: audit log lines built from docs/audit-log.md alone (not from keyhold's
code), valid and invalid, so the C++ reader is checked against an independent writer.
Run: python3 tests/vectors/audit/generate_entries.py > tests/vectors/audit/entries.json"""
import hashlib
import hmac
import json

KEY = bytes(range(1, 33))  # the unit tests' TestKey(1)


def jstr(s):
    out = '"'
    for ch in s:
        c = ord(ch)
        if ch in '"\\':
            out += "\\" + ch
        elif c < 0x20 or c == 0x7F:
            out += "\\u00%02x" % c
        else:
            out += ch
    return out + '"'


def body(seq, time, event, fields, prev):
    f = ",".join(jstr(k) + ":" + jstr(v) for k, v in fields)
    return ('{"seq":%d,"time":%s,"event":%s,"fields":{%s},"prev":"%s"'
            % (seq, jstr(time), jstr(event), f, prev.hex()))


def mac(b, key=KEY, context=b"keyhold audit entry v1"):
    return hmac.new(key, context + b"\x00" + b.encode(), hashlib.sha256).hexdigest()


def line(seq, time, event, fields, prev, key=KEY):
    b = body(seq, time, event, fields, prev)
    return b + ',"mac":"' + mac(b, key) + '"}'


cases = []


def add(comment, text, valid):
    cases.append({"comment": comment, "line": text, "valid": valid})


zero = bytes(32)
g = line(1, "2026-11-28T12:00:00Z", "audit.genesis",
         [("format", "1"), ("start_generation", "0")], zero)
add("genesis", g, True)
h = hashlib.sha256(g.encode()).digest()
add("keystore change", line(2, "2026-11-28T12:00:01Z", "key.rotate",
                            [("key", "backups"), ("version", "2"), ("generation", "4")], h), True)
add("key use with escapes and non-ASCII",
    line(3, "2024-02-29T23:59:59Z", "use.decrypt",
         [("keys", "backups v2, other v1"),
          ("object", 'dir/"q"\\b\nn\x01\x7f/\\xff/caf\u00e9/\U0001F600')], h), True)
add("no fields", line(7, "1970-01-01T00:00:00Z", "x", [], h), True)
add("large seq", line(18446744073709551615, "9999-12-31T23:59:59Z", "x", [], h), True)

ok = line(2, "2026-11-28T12:00:01Z", "use.encrypt", [("keys", "k v1"), ("object", "o")], h)
add("wrong key", line(2, "2026-11-28T12:00:01Z", "use.encrypt",
                      [("keys", "k v1"), ("object", "o")], h, key=bytes(32)), False)
add("MAC without its context string",
    body(2, "2026-11-28T12:00:01Z", "x", [], h) + ',"mac":"'
    + hmac.new(KEY, body(2, "2026-11-28T12:00:01Z", "x", [], h).encode(),
               hashlib.sha256).hexdigest() + '"}', False)
add("upper-case MAC hex", ok[:-66] + ok[-66:-2].upper() + '"}', False)
add("one MAC digit changed", ok[:-3] + ("0" if ok[-3] != "0" else "1") + '"}', False)
add("trailing space", ok + " ", False)
add("CR at the end", ok + "\r", False)
add("missing closing brace", ok[:-1], False)


def resign(b):
    return b + ',"mac":"' + mac(b) + '"}'


# Correctly MACed but non-canonical or malformed: the reader must still refuse them.
add("leading zero in seq", resign('{"seq":02,"time":"2026-11-28T12:00:01Z","event":"x",'
                                  '"fields":{},"prev":"' + h.hex() + '"'), False)
add("whitespace", resign('{"seq":2, "time":"2026-11-28T12:00:01Z","event":"x",'
                         '"fields":{},"prev":"' + h.hex() + '"'), False)
add("members reordered", resign('{"time":"2026-11-28T12:00:01Z","seq":2,"event":"x",'
                                '"fields":{},"prev":"' + h.hex() + '"'), False)
add("unneeded escape", resign('{"seq":2,"time":"2026-11-28T12:00:01Z","event":"\\u0078",'
                              '"fields":{},"prev":"' + h.hex() + '"'), False)
add("short escape \\n", resign('{"seq":2,"time":"2026-11-28T12:00:01Z","event":"a\\nb",'
                               '"fields":{},"prev":"' + h.hex() + '"'), False)
add("upper-case \\u hex", resign('{"seq":2,"time":"2026-11-28T12:00:01Z","event":"a\\u001F",'
                                 '"fields":{},"prev":"' + h.hex() + '"'), False)
add("repeated field", resign('{"seq":2,"time":"2026-11-28T12:00:01Z","event":"x",'
                             '"fields":{"a":"1","a":"2"},"prev":"' + h.hex() + '"'), False)
add("number field value", resign('{"seq":2,"time":"2026-11-28T12:00:01Z","event":"x",'
                                 '"fields":{"a":1},"prev":"' + h.hex() + '"'), False)
add("time with offset", resign('{"seq":2,"time":"2026-11-28T13:00:01+01:00","event":"x",'
                               '"fields":{},"prev":"' + h.hex() + '"'), False)
add("time with fraction", resign('{"seq":2,"time":"2026-11-28T12:00:01.5Z","event":"x",'
                                 '"fields":{},"prev":"' + h.hex() + '"'), False)
add("impossible date", resign('{"seq":2,"time":"2026-02-29T12:00:01Z","event":"x",'
                              '"fields":{},"prev":"' + h.hex() + '"'), False)
add("empty event", resign('{"seq":2,"time":"2026-11-28T12:00:01Z","event":"",'
                          '"fields":{},"prev":"' + h.hex() + '"'), False)
add("short prev", resign('{"seq":2,"time":"2026-11-28T12:00:01Z","event":"x",'
                         '"fields":{},"prev":"' + h.hex()[:-2] + '"'), False)
add("seq overflow", resign('{"seq":18446744073709551616,"time":"2026-11-28T12:00:01Z",'
                           '"event":"x","fields":{},"prev":"' + h.hex() + '"'), False)
add("extra member", resign('{"seq":2,"time":"2026-11-28T12:00:01Z","event":"x",'
                           '"fields":{},"prev":"' + h.hex() + '","x":"y"'), False)

print(json.dumps({"key": KEY.hex(), "cases": cases}, indent=1, ensure_ascii=False))
