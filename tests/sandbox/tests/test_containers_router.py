"""The sandbox's own router (the P/D EPP of pd-disaggregation) against a small fake API server over TLS."""

import asyncio
import datetime
import ipaddress
import json
import ssl
import threading

import openai
import pytest
import requests
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from containers_harness import random_pod_ip, wait_until

TOKEN = "sandbox-token"
V1, V1ALPHA2 = ("inference.networking.k8s.io", "v1"), ("inference.networking.x-k8s.io", "v1alpha2")


def write_self_signed(directory) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-apiserver")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "ca.crt", directory / "ca.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def pod(name: str, ip: str, labels: dict, ready: bool = True) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns", "labels": labels},
            "status": {"podIP": ip, "phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pool_v1(name: str, labels: dict, port: int = 8000) -> tuple:
    return V1, name, {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
                      "metadata": {"name": name, "namespace": "ns"},
                      "spec": {"selector": {"matchLabels": labels}, "targetPorts": [{"number": port}]}}


def pool_v1alpha2(name: str, labels: dict, port: int = 8000) -> tuple:
    return V1ALPHA2, name, {"apiVersion": "inference.networking.x-k8s.io/v1alpha2", "kind": "InferencePool",
                            "metadata": {"name": name, "namespace": "ns"},
                            "spec": {"selector": labels, "targetPortNumber": port}}


class FakeCluster:
    """An API server that knows InferencePools, pods and HTTPRoutes, plus recording upstream "pods" that
    answer with the headers they received. Runs its own event loop in a thread; tests replace its lists."""

    def __init__(self, directory):
        self.pools: dict = {}
        self.pods: list = []
        self.unauthorized = 0
        self.ca_file, key_file = write_self_signed(directory)
        self.loop = asyncio.new_event_loop()
        self.runners = []
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(self.ca_file, key_file)
        app = web.Application()
        app.router.add_get("/apis/{group}/{version}/namespaces/{ns}/inferencepools/{name}", self.get_pool)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self.list_pods)
        port = self._serve(app, "127.0.0.1", 0, tls)
        self.url = f"https://127.0.0.1:{port}"

    def _serve(self, app, host, port, tls=None) -> int:
        async def start():
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, host, port, ssl_context=tls)
            await site.start()
            self.runners.append(runner)
            return runner.addresses[0][1]
        return asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)

    def stop(self):
        async def cleanup():
            for runner in self.runners:
                await runner.cleanup()
        asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)

    def serve_recorder(self, ip: str, name: str, port: int = 8000) -> None:
        async def record(request):
            await asyncio.sleep(float(request.headers.get("x-sleep", "0")))
            return web.json_response({"pod": name, "path": request.path, "headers": dict(request.headers),
                                      "choices": []})
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        self._serve(app, ip, port)

    def container_spec(self) -> dict:
        return {"api_server": self.url, "token": TOKEN, "ca_file": self.ca_file}

    def _authorized(self, request) -> bool:
        if request.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        self.unauthorized += 1
        return False

    @staticmethod
    def _status(code, reason):
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                                  "code": code, "message": reason}, status=code)

    async def get_pool(self, request):
        if not self._authorized(request):
            return self._status(401, "Unauthorized")
        info = request.match_info
        found = self.pools.get(((info["group"], info["version"]), info["name"]))
        return web.json_response(found) if found and info["ns"] == "ns" else self._status(404, "NotFound")

    async def list_pods(self, request):
        if not self._authorized(request):
            return self._status(401, "Unauthorized")
        wanted = dict(term.split("=", 1) for term in request.query.get("labelSelector", "").split(",") if term)
        items = [p for p in self.pods if wanted.items() <= p["metadata"]["labels"].items()]
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                                  "items": items})

    def add_pool(self, pool: tuple) -> None:
        api, name, body = pool
        self.pools = {**self.pools, (api, name): body}


@pytest.fixture
def cluster(tmp_path):
    fake = FakeCluster(tmp_path)
    yield fake
    fake.stop()


def start_epp(containers, cluster, *extra):
    epp = containers("epp", ["--pool-name", "pool", "--pool-namespace", "ns", "--http-port", 80, *extra],
                     pod="pool-epp-0", **cluster.container_spec())
    epp.wait_for_port(80)
    epp.wait_for_port(9002)
    epp.url = f"http://{epp.pod_ip}"
    return epp


def samples(url: str) -> dict:
    text = requests.get(url + "/metrics", timeout=5).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def post(url: str, prompt: str, **headers) -> requests.Response:
    return requests.post(url + "/v1/completions", json={"model": "m1", "prompt": prompt, "max_tokens": 1},
                         headers=headers, timeout=5)


def wait_status(url: str, status: int) -> requests.Response:
    # A list, because a requests.Response is false for any error status.
    return wait_until(lambda: [answer for answer in [post(url, "probe")] if answer.status_code == status], 5,
                      f"HTTP {status} from {url}")[0]


def test_epp_routes_to_ready_pods_round_robin_with_prefix_affinity(containers, cluster):
    servers = {name: containers("vllm", ["--model", "m1"], pod=name) for name in ("ms-a", "ms-b", "ms-c")}
    cluster.pods = [pod(name, server.pod_ip, {"app": "ms"}, ready=name != "ms-c")
                    for name, server in servers.items()]
    cluster.add_pool(pool_v1("pool", {"app": "ms"}))
    for server in servers.values():
        server.wait_for_port(8000)
    epp = start_epp(containers, cluster)
    wait_status(epp.url, 200)
    client = openai.OpenAI(base_url=epp.url + "/v1", api_key="none", max_retries=0, timeout=10)

    def served_by(prompt):
        raw = client.completions.with_raw_response.create(model="m1", prompt=prompt, max_tokens=1)
        return raw.headers["x-inference-pod"]

    assert {served_by(f"distinct prompt {i}") for i in range(6)} == {"ms-a", "ms-b"}
    assert len({served_by("the same long shared prefix " * 4 + str(i)) for i in range(4)}) == 1
    chat = client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    assert chat.choices[0].message.content
    line = json.loads(epp.wait_for_line(r'"msg": "Request handled".*"endpoint": "127\.'))
    assert line["endpoint"].endswith(":8000") and line["pod"] in ("ms-a", "ms-b")
    metrics = samples(f"http://{epp.pod_ip}:9090")
    assert metrics[("inference_pool_ready_pods", (("name", "pool"),))] == 2
    assert metrics[("inference_objective_request_total", (("model_name", "m1"), ("target_model_name", "m1")))] >= 11
    assert cluster.unauthorized == 0
    assert epp.stop() == 0


def test_destination_header_then_no_healthy_upstream(containers, cluster):
    ip = random_pod_ip()
    cluster.serve_recorder(ip, "rec-0")
    cluster.pods = [pod("rec-0", ip, {"app": "ms"})]
    cluster.add_pool(pool_v1alpha2("pool", {"app": "ms"}))
    epp = start_epp(containers, cluster)
    answer = wait_status(epp.url, 200)
    assert answer.json()["headers"]["x-gateway-destination-endpoint"] == f"{ip}:8000"
    assert "x-prefiller-host-port" not in answer.json()["headers"]
    cluster.pods = [pod("rec-0", ip, {"app": "ms"}, ready=False)]
    answer = wait_status(epp.url, 503)
    assert answer.text == "no healthy upstream" and answer.headers["Content-Type"].startswith("text/plain")
    with pytest.raises(openai.InternalServerError) as caught:
        openai.OpenAI(base_url=epp.url + "/v1", api_key="none", max_retries=0, timeout=5).models.list()
    assert caught.value.status_code == 503


def test_pd_sends_prefiller_header_and_counts_decisions(containers, cluster):
    decode_ip, prefill_ip = random_pod_ip(), random_pod_ip()
    cluster.serve_recorder(decode_ip, "decode-0")
    cluster.serve_recorder(prefill_ip, "prefill-0")
    cluster.pods = [pod("decode-0", decode_ip, {"app": "ms", "llm-d.ai/role": "decode"}),
                    pod("prefill-0", prefill_ip, {"app": "ms", "llm-d.ai/role": "prefill"})]
    cluster.add_pool(pool_v1("pool", {"app": "ms"}))
    epp = start_epp(containers, cluster, "--pd")
    wait_status(epp.url, 200)
    answers = [post(epp.url, f"prompt {i}").json() for i in range(3)]
    assert {answer["pod"] for answer in answers} == {"decode-0"}
    assert {answer["headers"]["x-prefiller-host-port"] for answer in answers} == {f"{prefill_ip}:8000"}
    metrics = samples(f"http://{epp.pod_ip}:9090")
    decisions = {labels: value for (name, labels), value in metrics.items()
                 if name == "llm_d_epp_disagg_decision_total"}
    assert sum(value for labels, value in decisions.items()
               if ("decision_type", "prefill-decode") in labels and ("model_name", "m1") in labels) >= 4


def test_pd_end_to_end_through_the_routing_sidecar(containers, cluster):
    decode_ip = random_pod_ip()
    sidecar = containers("routing-proxy", ["--port=8000", "--vllm-port=8200", "--secure-proxy=false"],
                         pod_ip=decode_ip, pod="decode-0")
    decode = containers("vllm", ["--model", "m1", "--port", 8200], pod_ip=decode_ip, pod="decode-0")
    prefill = containers("vllm", ["--model", "m1", "--port", 8000], pod="prefill-0")
    for server, port in ((sidecar, 8000), (decode, 8200), (prefill, 8000)):
        server.wait_for_port(port)
    cluster.pods = [pod("decode-0", decode_ip, {"app": "ms", "llm-d.ai/role": "decode"}),
                    pod("prefill-0", prefill.pod_ip, {"app": "ms", "llm-d.ai/role": "prefill"})]
    cluster.add_pool(pool_v1("pool", {"app": "ms"}))
    epp = start_epp(containers, cluster, "--pd")
    wait_status(epp.url, 200)

    def prefilled_tokens():
        return sum(value for (name, _labels), value in samples(f"http://{prefill.pod_ip}:8000").items()
                   if name == "vllm:generation_tokens_total")

    before = prefilled_tokens()
    client = openai.OpenAI(base_url=epp.url + "/v1", api_key="none", max_retries=0, timeout=10)
    chunks = list(client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "Hi " * 50}],
                                                 max_tokens=3, stream=True))
    assert chunks[-1].choices[0].finish_reason == "length"
    prefill.wait_for_line(r'"POST /v1/chat/completions HTTP/1\.1" 200 OK$')
    decode.wait_for_line(r'"POST /v1/chat/completions HTTP/1\.1" 200 OK$')
    assert prefilled_tokens() - before == 1  # the prefill pod ran the prompt with max_tokens 1
