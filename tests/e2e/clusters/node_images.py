"""Images for a LocalNode's containerd without a registry: one-binary OCI archives built here
(the pod sandbox, CoreDNS) and images copied from the Docker engine (`make images`)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path


def _blob(data: bytes) -> tuple[str, int]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


def binary_image_archive(binary: Path, image: str, path: Path, *, user: str = "65535:65535") -> Path:
    """An OCI image archive named `image` holding only `binary` (static) at /<its name>, which
    is also the entrypoint."""
    name = binary.name
    layer_buffer = io.BytesIO()
    with tarfile.open(fileobj=layer_buffer, mode="w") as layer_tar:
        content = binary.read_bytes()
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(content), 0o755
        layer_tar.addfile(info, io.BytesIO(content))
    layer = layer_buffer.getvalue()
    layer_digest, layer_size = _blob(layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": [f"/{name}"], "User": user},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
    ).encode()
    config_digest, config_size = _blob(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": layer_size,
                }
            ],
        }
    ).encode()
    manifest_digest, manifest_size = _blob(manifest)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": manifest_size,
                    "annotations": {
                        "io.containerd.image.name": image,
                        "org.opencontainers.image.ref.name": image.rsplit(":", 1)[1],
                    },
                }
            ],
        }
    ).encode()
    with tarfile.open(path, "w") as archive:
        for entry, data in [
            ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
            ("index.json", index),
            (f"blobs/sha256/{layer_digest[7:]}", layer),
            (f"blobs/sha256/{config_digest[7:]}", config),
            (f"blobs/sha256/{manifest_digest[7:]}", manifest),
        ]:
            info = tarfile.TarInfo(entry)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _ctr(socket: Path) -> list[str]:
    # k8s.io is the namespace containerd's CRI plugin (so the kubelet) sees.
    return ["ctr", "-a", str(socket), "-n", "k8s.io"]


def import_image_archive(socket: Path, archive: Path) -> None:
    subprocess.run(
        [*_ctr(socket), "images", "import", str(archive)], check=True, capture_output=True, timeout=120
    )


def import_docker_images(socket: Path, images: list[str]) -> None:
    """Copy `images` from the local Docker engine into containerd (`docker save | ctr import`).
    Short names land as docker.io/library/<name>, which is how the kubelet resolves them."""
    save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
    try:
        imported = subprocess.run(
            [*_ctr(socket), "images", "import", "-"], stdin=save.stdout, capture_output=True, timeout=900
        )
    finally:
        assert save.stdout is not None
        save.stdout.close()
        saved = save.wait(60)
    if saved != 0 or imported.returncode != 0:
        raise RuntimeError(
            f"importing {' '.join(images)} into containerd failed (docker save {saved}, "
            f"ctr import {imported.returncode}): {imported.stderr.decode(errors='replace')[-2000:]}"
        )
