#!/usr/bin/env python3
"""An independent check of fetch-oracle provenance, with the in-toto and securesystemslib packages from PyPI only.

Usage: in_toto_verify.py FILE.intoto.jsonl PUBLIC_KEY_HEX
Verifies every line's DSSE envelope (payload type, ed25519 signature over the PAE, by securesystemslib) and parses
the payload as an in-toto Statement v1 with a SLSA Provenance v1 predicate. Prints the statements as a JSON list;
exits 1 with the reason on stderr if any check fails.
"""
import json
import sys

from in_toto.models.metadata import Envelope
from securesystemslib.signer import SSlibKey

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def main(path, public_hex):
    # The DSSE keyid fetch-oracle writes is the public key in hex; securesystemslib matches signatures by keyid.
    key = SSlibKey(public_hex, "ed25519", "ed25519", {"public": public_hex})
    statements = []
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f.read().split("\n") if line.strip()]
    if not lines:
        raise ValueError(f"{path} holds no envelope")
    for n, line in enumerate(lines, 1):
        envelope = Envelope.from_dict(json.loads(line))
        if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise ValueError(f"line {n}: payload type {envelope.payload_type!r}, expected {IN_TOTO_PAYLOAD_TYPE!r}")
        envelope.verify([key], 1)  # raises VerificationError unless the signature verifies
        statement = json.loads(envelope.payload)
        if statement.get("_type") != "https://in-toto.io/Statement/v1":
            raise ValueError(f"line {n}: _type {statement.get('_type')!r}")
        if statement.get("predicateType") != "https://slsa.dev/provenance/v1":
            raise ValueError(f"line {n}: predicateType {statement.get('predicateType')!r}")
        if not statement.get("subject") or any("sha256" not in s.get("digest", {}) for s in statement["subject"]):
            raise ValueError(f"line {n}: a subject without a sha256 digest")
        deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        if any(not d.get("digest") for d in deps):
            raise ValueError(f"line {n}: a resolved dependency without a digest")
        statements.append(statement)
    json.dump(statements, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        sys.exit(2)
    try:
        main(sys.argv[1], sys.argv[2])
    except Exception as e:  # noqa: BLE001 - any failure is a refusal, reported with its type
        sys.stderr.write(f"REFUSED: {type(e).__name__}: {e}\n")
        sys.exit(1)
