# Checks an mcp-audit JSONL log with nothing but Python's standard library.
# Usage: AUDIT_SECRET=... python3 verify_log.py audit.jsonl
import hashlib, hmac, json, os, sys

secret, prev, seq, bad = os.environ["AUDIT_SECRET"].encode(), "0" * 64, 0, 0
for n, line in enumerate(open(sys.argv[1], "rb").read().split(b"\n")[:-1], 1):
    r = json.loads(line)
    # The stored line is the canonical form; without its sig member it is what was signed.
    unsigned = line.replace(b',"sig":' + json.dumps(r["sig"]).encode(), b"", 1)
    mac = hmac.new(secret, unsigned, hashlib.sha256).hexdigest()
    ok = r["seq"] == seq + 1 and r["prev"] == prev and r["sig"].split(":")[2] == mac
    bad += not ok
    print(f"line {n} seq {r['seq']}: {'ok' if ok else 'PROBLEM'}") if not ok else None
    prev, seq = hashlib.sha256(line).hexdigest(), r["seq"]
print(f"{seq} records, {bad} problems"); sys.exit(1 if bad else 0)
