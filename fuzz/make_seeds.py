#!/usr/bin/env python3
"""Writes the hand-made seed corpus under fuzz/corpus/<target>/ (committed; rerun only
to change it). Each seed is a small valid input: real signaling frames, meeting scripts,
HTTP requests and responses, JWKS documents, join tokens. Needs python3 and, for the
signed tokens, the `cryptography` package (`pip install cryptography`)."""
import base64, json, os, struct, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

# --- protobuf (proto3 wire format) -------------------------------------------------
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)

def f_varint(field, n):
    return varint(field << 3) + varint(n)

def f_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data

def f_float(field, x):
    return varint(field << 3 | 5) + struct.pack("<f", x)

def client(case, body, trace=""):
    out = f_bytes(case, body)
    if trace:
        out += f_bytes(20, trace)
    return out

def frame(payload):
    return struct.pack(">I", len(payload)) + payload

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
JOIN = client(1, f_bytes(1, "meeting-1") + f_bytes(2, "eyJhbGciOiJFZERTQSJ9.e30.c2ln")
              + f_bytes(3, "Alice") + f_bytes(4, f_bytes(1, "VP8") + f_bytes(2, "opus")
              + f_varint(3, 1) + f_varint(4, 3)) + f_bytes(5, "corr-1"), TRACE)
LAYOUT_CFG = f_varint(1, 2) + f_varint(2, 2) + f_varint(3, 4) + f_bytes(4, varint(1) + varint(2)) + f_varint(7, 1)
MESSAGES = {
    "publish": client(2, f_bytes(1, "cam-1") + f_varint(2, 1) + f_bytes(3, f_bytes(1, "vp8")
               + f_varint(2, 1_500_000) + f_bytes(3, f_varint(1, 1280) + f_varint(2, 720) + f_varint(3, 30)
               + f_bytes(4, f_bytes(1, "h") + f_varint(2, 1280) + f_varint(3, 720) + f_varint(4, 1_200_000))))),
    "subscribe": client(3, f_varint(1, 0) + f_bytes(2, LAYOUT_CFG) + f_bytes(3, varint(1) + varint(2))),
    "update_layout": client(4, f_bytes(1, LAYOUT_CFG)),
    "unsubscribe": client(5, b""),
    "quality": client(6, f_bytes(1, "cam-1") + f_varint(2, 800_000) + f_float(3, 0.02) + f_varint(4, 45)),
    "mute": client(7, f_varint(1, 1)),
    "host_mute": client(8, f_bytes(1, "p-2") + f_varint(2, 1) + f_bytes(4, "noise")),
    "unmute_request": client(9, f_varint(1, 1) + f_varint(2, 1)),
    "unmute_response": client(10, f_bytes(1, "p-2") + f_varint(2, 1)),
    "media_update": client(11, f_bytes(1, f_bytes(1, "https://mh-1.example/") + f_varint(2, 2))
                          + f_bytes(1, f_bytes(1, "https://mh-2.example/") + f_varint(2, 3) + f_bytes(3, "ice failed"))),
    "unknown_case": f_bytes(30, "future") + f_bytes(20, TRACE),
}

def signaling():
    t = "signaling_session"
    write(t, "join_only", bytes([63, 0]) + frame(JOIN))
    all_msgs = b"".join(frame(m) for m in MESSAGES.values())
    write(t, "join_then_every_message", bytes([5, 20]) + frame(JOIN) + all_msgs)
    write(t, "join_byte_by_byte", bytes([0, 1]) + frame(JOIN) + frame(MESSAGES["mute"]))
    write(t, "first_not_join", bytes([7, 0]) + frame(MESSAGES["mute"]))
    write(t, "zero_length", bytes([7, 0]) + frame(JOIN) + b"\0\0\0\0")
    write(t, "oversize_header", bytes([7, 0]) + frame(JOIN) + b"\x00\x01\x00\x01" + b"x" * 8)
    write(t, "garbage_payload", bytes([7, 0]) + frame(JOIN) + frame(b"\xff\xff\xff\xff\x0f"))
    write(t, "rate_burst", bytes([63, 0]) + frame(JOIN) + frame(MESSAGES["mute"]) * 120)

# --- meeting scripts (format: fuzz_targets/meeting_script.rs `Reader`) ---------------
def s(text):
    b = text.encode()
    return bytes([len(b)]) + b

def op_join(conn, sub, host=False, binding=0, index=0, corr=0, name="", forged=None, other=False):
    flags = (1 if host else 0) | (2 if other else 0) | (binding << 2)
    out = bytes([0, conn, sub, flags, corr, index]) + s(name)
    if binding == 2:
        out += s(forged or "")
    return out

def op_raw(conn, msg):
    return bytes([1, conn]) + struct.pack("<H", len(msg)) + msg

def meeting():
    t = "meeting_script"
    host, alice, bob = op_join(0, 0, host=True, name="Host"), op_join(1, 1, name="Alice"), op_join(2, 2, name="Bob")
    write(t, "three_join_and_talk", host + alice + bob
          + b"".join(op_raw(1, m) for m in MESSAGES.values())
          + bytes([2, 0, 1, 3]) + s("noise")            # host mutes participant 1
          + bytes([4, 1, 3, 0])                          # alice asks the host to unmute
          + bytes([5, 0, 1, 3]))                         # host approves
    write(t, "publish_and_layout", host + alice
          + bytes([6, 1, 1, 3]) + s("cam-1")
          + bytes([6, 1, 2, 0]) + s("screen-1")
          + bytes([7, 0, 2, 0]) + struct.pack("<III", 3, 3, 9) + bytes([2, 0, 1]) + bytes([1, 2])
          + bytes([7, 0, 1, 0]) + struct.pack("<III", 1, 1, 1) + bytes([0]) + bytes([0]))
    write(t, "huge_layout", host + alice + bytes([6, 1, 1, 0]) + s("cam-1")
          + bytes([7, 1, 2, 0]) + struct.pack("<III", 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF) + bytes([0]) + bytes([0]))
    write(t, "drop_and_recover", host + alice
          + bytes([8, 1, 0])                             # unclean drop: grace
          + bytes([9]) + struct.pack("<H", 500)          # 5 s later
          + op_join(3, 1, binding=1, index=1)            # recover with alice's binding token
          + bytes([8, 3, 1]))
    write(t, "grace_expires", host + alice + bytes([8, 1, 0]) + bytes([9]) + struct.pack("<H", 4000) + bytes([10]))
    write(t, "forged_binding", host + op_join(1, 1, binding=2, forged="00" * 32))
    write(t, "full_meeting", b"".join(op_join(c, c) for c in range(6)))
    write(t, "wrong_meeting", op_join(0, 0, other=True))
    write(t, "end_drained", host + alice + bytes([11, 0]))
    write(t, "end_redirect", host + alice + bytes([11, 1]) + alice)

# --- admin HTTP requests ----------------------------------------------------------
def admin():
    t = "admin_http"
    write(t, "get_health", "GET /health HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n")
    write(t, "get_ready_close", "GET /ready HTTP/1.1\r\nHost: mc\r\nConnection: close\r\nUser-Agent: kube-probe/1.30\r\n\r\n")
    write(t, "get_metrics_query", "GET /metrics?name[]=mc_capacity HTTP/1.1\r\nHost: mc\r\nAccept: text/plain;version=0.0.4\r\n\r\n")
    write(t, "head_http10_keepalive", "HEAD /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    write(t, "post_with_body", "POST /ready HTTP/1.1\r\nHost: mc\r\nContent-Length: 5\r\n\r\nhello")
    write(t, "chunked_refused", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    write(t, "pipelined", "GET /health HTTP/1.1\r\n\r\nGET /ready HTTP/1.1\r\n\r\n")

# --- GC responses -----------------------------------------------------------------
def gc():
    t = "gc_response"
    body = json.dumps({"accepted": True, "heartbeat_interval_ms": 10000, "message": "registered"}).encode()
    write(t, "content_length", b"\x3f" + b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:10], body[10:])) + b"0\r\nX-Trailer: 1\r\n\r\n"
    write(t, "chunked", b"\x03" + b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    write(t, "until_close", b"\x10" + b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + body)
    write(t, "continue_then_ok", b"\x3f" + b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    write(t, "error_503", b"\x3f" + b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    write(t, "truncated", b"\x3f" + b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"acc")

# --- JWKS and JWT -------------------------------------------------------------------
def b64u(b):
    if isinstance(b, str):
        b = b.encode()
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def keys():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization
    sk = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    pub = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sk, pub

def jwks(pub):
    t = "jwks_parse"
    good = {"kty": "OKP", "crv": "Ed25519", "x": b64u(pub), "kid": "fuzz-key", "use": "sig", "alg": "EdDSA"}
    write(t, "one_key", json.dumps({"keys": [good]}))
    rsa = {"kty": "RSA", "kid": "rsa-1", "n": "sXch", "e": "AQAB", "alg": "RS256"}
    enc = dict(good, kid="enc", use="enc")
    write(t, "mixed_keys", json.dumps({"keys": [rsa, enc, good, dict(good, kid="k2", alg="Ed25519")]}))
    write(t, "private_d", json.dumps({"keys": [dict(good, d=b64u(bytes(32)))]}))
    write(t, "duplicate_kid", json.dumps({"keys": [good, good]}))
    write(t, "short_x", json.dumps({"keys": [dict(good, x=b64u(bytes(31)))]}))
    write(t, "empty", '{"keys":[]}')

def jwt(sk):
    t = "jwt_verify"
    now = 1_700_000_000
    claims = {"sub": "user-1", "token_type": "meeting", "meeting_id": "meeting-1", "role": "host",
              "participant_type": "member", "capabilities": ["publish", "subscribe"], "name": "Alice",
              "iat": now - 10, "exp": now + 3600, "jti": "0190d0c0-0000-7000-8000-000000000000",
              "aud": "mc", "iss": "ac"}
    header = {"alg": "EdDSA", "typ": "JWT", "kid": "fuzz-key"}
    def token(h, c, key=sk):
        si = b64u(json.dumps(h, separators=(",", ":"))) + "." + b64u(json.dumps(c, separators=(",", ":")))
        return si + "." + b64u(key.sign(si.encode()))
    # Mode byte even: raw token text.
    write(t, "raw_valid", b"\x00" + token(header, claims).encode())
    write(t, "raw_expired", b"\x00" + token(header, dict(claims, exp=now - 100)).encode())
    write(t, "raw_alg_none", b"\x00" + (b64u('{"alg":"none","kid":"fuzz-key"}') + "." + b64u(json.dumps(claims)) + ".").encode())
    write(t, "raw_hs256", b"\x00" + (b64u('{"alg":"HS256","kid":"fuzz-key"}') + "." + b64u(json.dumps(claims)) + "." + b64u(bytes(32))).encode())
    write(t, "raw_unknown_kid", b"\x00" + token(dict(header, kid="nope"), claims).encode())
    # Mode byte odd: the harness signs; payload alone or header NUL payload.
    write(t, "signed_payload", b"\x01" + json.dumps(claims).encode())
    write(t, "signed_minimal", b"\x01" + json.dumps({"sub": "u", "token_type": "meeting", "meeting_id": "meeting-1", "iat": now, "exp": now + 60}).encode())
    write(t, "signed_float_times", b"\x01" + json.dumps(dict(claims, iat=now + 0.5, exp=1e300)).encode())
    write(t, "signed_aud_array", b"\x01" + json.dumps(dict(claims, aud=["x", "mc"], nbf=now)).encode())
    write(t, "signed_header_crit", b"\x01" + json.dumps(dict(header, crit=["exp"])).encode() + b"\x00" + json.dumps(claims).encode())

def main():
    signaling(); meeting(); admin(); gc()
    try:
        sk, pub = keys()
    except ImportError:
        sys.exit("JWKS/JWT seeds need the cryptography package")
    jwks(pub); jwt(sk)

if __name__ == "__main__":
    main()
