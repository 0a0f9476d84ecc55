"""What the kubelet tells a container program: the JSON in LLMD_SANDBOX_CONTAINER."""

import dataclasses
import json
import os

ENV_VAR = "LLMD_SANDBOX_CONTAINER"


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    image: str
    name: str
    pod_ip: str
    args: list = dataclasses.field(default_factory=list)
    env: dict = dataclasses.field(default_factory=dict)
    pod: str = ""
    namespace: str = "default"
    labels: dict = dataclasses.field(default_factory=dict)
    api_server: str = ""
    token: str = ""
    ca_file: str = ""
    netns: str = ""

    @property
    def listen_host(self) -> str:
        """All addresses inside the pod's own network namespace, as real servers listen; the pod IP where the
        program runs without one (the container tests run several pods' programs on one host)."""
        return "0.0.0.0" if self.netns else self.pod_ip

    @classmethod
    def from_environ(cls) -> "ContainerSpec":
        raw = json.loads(os.environ[ENV_VAR])
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in raw.items() if key in known and value is not None})
