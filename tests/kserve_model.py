"""A real KServe Python model server with a custom model class (no weights), for the tests.

Run with the interpreter of the separate KServe environment (`.venv-kserve`, see
`tests/kserve_server.py`): `python tests/kserve_model.py PORT`. The model answers v1
`:predict` and v2 `infer` calls; an instance "fail" makes the predict step raise (a 500). KServe
binds 0.0.0.0 by default: this script makes it bind loopback only.
"""

from __future__ import annotations

import sys

PORT = int(sys.argv[1])
sys.argv = sys.argv[:1]  # kserve parses the command line at import

import uvicorn  # noqa: E402

_Config = uvicorn.Config


def _loopback_config(*args, **kwargs):
    kwargs["host"] = "127.0.0.1"
    return _Config(*args, **kwargs)


uvicorn.Config = _loopback_config  # type: ignore[misc]

from kserve import Model, ModelServer  # noqa: E402


class Summarizer(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.load()

    def load(self) -> bool:
        self.ready = True
        return self.ready

    async def predict(self, payload, headers=None, response_headers=None):
        instances = payload.get("instances", []) if isinstance(payload, dict) else []
        if "fail" in instances:
            raise RuntimeError("asked to fail")
        return {"predictions": [len(str(i)) for i in instances]}


if __name__ == "__main__":
    server = ModelServer(http_port=PORT, enable_grpc=False, workers=1, grace_period=1)
    server.start([Summarizer("fir-summarizer")])
