"""TLS material for tests: a throw-away CA and a certificate for the loopback names.

Only `trustme` (a dev dependency), imported when called, so that importing
`cluster.testing` needs none of it.
"""

from __future__ import annotations

import pathlib

__all__ = ["tls_files"]


def tls_files(root: pathlib.Path) -> dict[str, str]:
    """A fresh CA and a certificate for 127.0.0.1 and localhost, as PEM files in `root`.

    Returns the paths under "ca", "key" and "chain" (what `spark.ssl.rpc.*` names).
    Needs `trustme`, a dev dependency, imported here so the rest needs only psutil.
    """
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = {"ca": root / "ca.pem", "key": root / "node.key", "chain": root / "node.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    cert.cert_chain_pems[0].write_to_path(str(files["chain"]))
    return {k: str(v) for k, v in files.items()}
