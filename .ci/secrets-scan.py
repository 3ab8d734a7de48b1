"""Scan every version of every file in the git history for secrets (`make secrets-scan`).

    python .ci/secrets-scan.py [--repo PATH]

Why detect-secrets (Yelp, pip-installable, pinned in requirements.txt) and not another:
gitleaks and trufflehog v3 are Go binaries (not on PyPI); trufflehog3 on PyPI pins old
attrs/Jinja2/PyYAML and would downgrade MLflow's; trufflehog 2.x is unmaintained.
detect-secrets scans files, not history, so this script gives it the history: every blob
reachable from any ref (`git rev-list --all --objects`: every version of every file ever
committed, deleted files included) is written under its own path into a temporary folder
and scanned there; each finding names the commits that added or removed that version.

Plugins: the pattern detectors (AWS, Azure, GitHub, GitLab, private keys, Slack, Stripe,
JWT, basic-auth URLs, ...). Not the entropy detectors, the keyword detector nor public IPs
(`0.0.0.0` binds): they flag content hashes, fixture tokens such as `test-admin-token` and
every `password=` in the docs, and would need a hand-kept baseline. Placeholders such as
`CHANGE_ME` are not secrets. Exit 1 with the findings (JSON lines), 0 when clean.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PLUGINS = [
    "ArtifactoryDetector",
    "AWSKeyDetector",
    "AzureStorageKeyDetector",
    "BasicAuthDetector",
    "CloudantDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "IbmCloudIamDetector",
    "IbmCosHmacDetector",
    "JwtTokenDetector",
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PrivateKeyDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SoftlayerDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
]
#: Placeholders that are not secrets (`postgresql://mlflow:CHANGE_ME@host/db` in .env.example;
#: docker/check-secrets.sh refuses them at start): the whole secret must be one of these.
PLACEHOLDERS = [r"^(CHANGE_?ME|change_?me|changeme|REPLACE_?ME|password|secret|x+|\*+)$", r"^\$\{?[A-Za-z_]+\}?$", r"^<[^>]*>$"]
#: Blobs larger than this are data (Parquet, images), not configuration.
MAX_BLOB_BYTES = 2 * 1024 * 1024


def git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True, check=True).stdout


def history_blobs(repo: Path) -> dict[str, str]:
    """{blob id: a path it had} for every blob reachable from any ref."""
    blobs: dict[str, str] = {}
    for line in git(repo, "rev-list", "--all", "--objects").decode().splitlines():
        sha, _, path = line.partition(" ")
        if path:
            blobs.setdefault(sha, path)
    kinds = git(repo, "cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)", data="\n".join(blobs).encode())
    keep = {}
    for line in kinds.decode().splitlines():
        sha, kind, size = line.split()
        if kind == "blob" and int(size) <= MAX_BLOB_BYTES:
            keep[sha] = blobs[sha]
    return keep


def write_blobs(repo: Path, blobs: dict[str, str], folder: Path) -> dict[str, str]:
    """Each blob written as folder/<blob id>/<its path>; {written file: blob id}."""
    out = git(repo, "cat-file", "--batch", data="\n".join(blobs).encode())
    files, at = {}, 0
    while at < len(out):
        end = out.index(b"\n", at)
        sha, _, size = out[at:end].decode().split()
        body = out[end + 1 : end + 1 + int(size)]
        at = end + 1 + int(size) + 1
        target = folder / sha / blobs[sha]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        files[str(target)] = sha
    return files


def scan(repo: Path) -> list[dict]:
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import transient_settings

    blobs = history_blobs(repo)
    findings = []
    with tempfile.TemporaryDirectory(prefix="secrets-scan-") as tmp:
        files = write_blobs(repo, blobs, Path(tmp))
        settings = {
            "plugins_used": [{"name": name} for name in PLUGINS],
            "filters_used": [{"path": "detect_secrets.filters.regex.should_exclude_secret", "pattern": PLACEHOLDERS}],
        }
        with transient_settings(settings):
            secrets = SecretsCollection()
            for path in files:
                secrets.scan_file(path)
        for filename, secret in secrets:
            sha = files[filename]
            commits = git(repo, "log", "--all", "--format=%h", f"--find-object={sha}").decode().split()
            findings.append(
                {
                    "path": blobs[sha],
                    "line": secret.line_number,
                    "type": secret.type,
                    "blob": sha,
                    "commits": commits,
                }
            )
    return sorted(findings, key=lambda f: (f["path"], f["line"] or 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    blobs = len(history_blobs(args.repo))
    findings = scan(args.repo)
    for finding in findings:
        print(json.dumps(finding))
    commits = len(git(args.repo, "rev-list", "--all").split())
    verdict = f"{len(findings)} secret(s) found" if findings else "no secrets found"
    print(f"secrets-scan: {commits} commits, {blobs} file versions scanned: {verdict}", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
