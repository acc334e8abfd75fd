#!/usr/bin/env python3
"""Writes the fuzz seed corpora (fuzz/seeds/<target>/) from docs/test-vectors/v1.json and
fixtures/. Run from fuzz/: python3 make_seeds.py. The corpora libFuzzer grows go to
fuzz/corpus/ (git-ignored); only these small seeds are committed."""
import json, os, pathlib

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
V = json.loads((ROOT / "docs/test-vectors/v1.json").read_text())
h = bytes.fromhex


def bstr(b):
    n = len(b)
    if n < 24:
        return bytes([0x40 | n]) + b
    if n < 0x100:
        return bytes([0x58, n]) + b
    if n < 0x10000:
        return bytes([0x59]) + n.to_bytes(2, "big") + b
    return bytes([0x5A]) + n.to_bytes(4, "big") + b


def tstr(s):
    b = s.encode()
    assert len(b) < 24
    return bytes([0x60 | len(b)]) + b


def arr(*items):
    assert len(items) < 24
    return bytes([0x80 | len(items)]) + b"".join(items)


def write(target, name, data):
    d = HERE / "seeds" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


env = h(V["envelope"]["envelope_hex"])
receipt = h(V["receipt_delivered"]["signed_receipt_hex"])
roster = h(V["roster"]["signed_roster_hex"])
binding = h(V["binding"]["signed_binding_hex"])
files = [h(f["bytes_hex"]) for f in V["envelope"]["files"]]

# wire_decode
write("wire_decode", "deliver", h(V["wire"]["deliver_request_hex"]))
write("wire_decode", "hop_ack", h(V["wire"]["hop_ack_response_hex"]))
write("wire_decode", "directory_sync", h(V["wire"]["directory_sync_request_hex"]))
write("wire_decode", "receipts", arr(b"\x01", b"\x02", arr(bstr(receipt))))
write("wire_decode", "receipts_taken", arr(b"\x01", b"\x02", b"\x05"))
write("wire_decode", "refused", arr(b"\x01", b"\x04", arr(b"\x02", tstr("too large"))))
write("wire_decode", "directory",
      arr(b"\x01", b"\x03", arr(bstr(roster), arr(bstr(binding)), b"\x01", b"\xf4")))
write("wire_decode", "hop_retry",
      arr(b"\x01", b"\x01", arr(arr(bstr(b"\x5a" * 16), b"\x03", b"\xf6", tstr("no route yet")))))

# envelope_verify: 0x00 + envelope bytes; 0x80 + a plaintext payload to seal
write("envelope_verify", "envelope", b"\x00" + env)
write("envelope_verify", "payload", b"\x80" + arr(*[bstr(f) for f in files]))
write("envelope_verify", "payload_one_file", b"\x81" + arr(bstr(files[0])))

# proof_verify
write("proof_verify", "proof", h(V["proof"]["proof_hex"]))
write("proof_verify", "proof_no_receipts", h(V["proof"]["proof_hex"])[:-len(bstr(receipt)) - 1] + b"\x80")

# csv_check: selector byte (index into the target's NAMES) + fixture bytes
names = [
    "UP1KYO_", "UP2KYO_", "UP3KYO_", "UPHOSOKU_000000_", "UPPLAN_", "UPSIKYU_", "UPJSK_",
    "UPKIHON_4", "UPKIHON_SUB1_", "UPYOBO_4", "DLTJSK_",
]
for p in sorted((ROOT / "fixtures").rglob("*.CSV")):
    for i, prefix in enumerate(names):
        if p.name.startswith(prefix):
            rel = p.relative_to(ROOT / "fixtures")
            write("csv_check", str(rel).replace(os.sep, "__"), bytes([i]) + p.read_bytes())
            break

# cbor_strict: the protocol's values (both envelope versions), and a few non-canonical
# and out-of-subset encodings.
V2 = json.loads((ROOT / "docs/test-vectors/v2.json").read_text())
write("cbor_strict", "envelope_v1", env)
write("cbor_strict", "envelope_v2", h(V2["envelope"]["envelope_hex"]))
write("cbor_strict", "stored_header_v2", h(V2["envelope"]["stored_header_hex"]))
write("cbor_strict", "receipt", receipt)
write("cbor_strict", "roster", roster)
write("cbor_strict", "binding", binding)
write("cbor_strict", "proof_v2", h(V2["proof"]["proof_hex"]))
write("cbor_strict", "long_form_uint", bytes([0x19, 0x00, 0x01]))
write("cbor_strict", "indefinite_array", bytes([0x9F, 0x01, 0xFF]))
write("cbor_strict", "map", bytes([0xA1, 0x01, 0x02]))
write("cbor_strict", "tag_float", bytes([0xC1, 0xF9, 0x3C, 0x00]))
