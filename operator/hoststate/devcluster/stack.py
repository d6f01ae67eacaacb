"""`make run`: the local stack in the foreground, stopped cleanly on Ctrl-C or SIGTERM.

Starts the local control plane unless KUBECONFIG is given, applies the CRDs and the
samples, runs the operator as its ServiceAccount (the manifests' RBAC, election Lease and
FlowSchemas, as in a cluster) and each agent as its host's, and writes `.run/kubeconfig` and `.run/env` for other shells, `.run/clouds.yaml` for the
OpenStack clients (the local admin and a member of each sample tenant) and `.run/openrc` (the
admin's, for the nova shell).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import yaml

from .. import API_GROUP, API_VERSION
from ..domain import COMPUTE_BINARY
from ..facade.api_version import MAX_VERSION
from ..resources.computeservice import service_name
from ..resources.crd import ALL_CRDS
from ..resources.lease import DEFAULT_LEASE_NAMESPACE as LEASE_NAMESPACE
from . import REPO_ROOT, DevCluster, control_plane_bin_dir
from .processes import HoststateProcess

RUN_DIR = REPO_ROOT / ".run"
CRD_DIR = REPO_ROOT / "deploy" / "crds"
SAMPLES_DIR = REPO_ROOT / "deploy" / "samples"
MANIFESTS_DIR = REPO_ROOT / "deploy" / "manifests"


class Kubectl:
    """The cached kubectl against one kubeconfig."""

    def __init__(self, binary: Path, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args],
            text=True,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr or ''}")
        return result


def install_crds(kubectl: Kubectl, timeout: float = 60.0) -> None:
    """Apply the CRDs; return once they serve and their OpenAPI is published (kubectl explain)."""
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(CRD_DIR))
    kubectl("wait", "--for=condition=Established", f"--timeout={timeout:.0f}s", *(f"crd/{i.name}" for i in ALL_CRDS))
    deadline = time.monotonic() + timeout
    openapi = f"/openapi/v3/apis/{API_GROUP}/{API_VERSION}"
    while kubectl("get", "--raw", openapi, check=False, capture=True).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{openapi} not published after {timeout}s")
        time.sleep(0.1)


def sample_services() -> dict[str, list[str]]:
    """binary -> hosts of the sample ComputeServices (one agent process per service)."""
    hosts: dict[str, list[str]] = {}
    for path in sorted(SAMPLES_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "ComputeService":
                spec = doc["spec"]
                hosts.setdefault(spec.get("binary", COMPUTE_BINARY), []).append(spec["host"])
    return hosts


AGENT_DURATION = "720h"  # the agents' tokens outlive any `make run`


def agent_kubeconfigs(kubectl: Kubectl, hosts: list[tuple[str, str]]) -> dict[str, Path]:
    """One identity per host, as outside Kubernetes (docs/deployment.md): a ServiceAccount
    hoststate-agent-<host> bound to the agent's Role, which the admission policy confines to its
    host's Lease. host -> a kubeconfig with a token of it (the current cluster's)."""
    kubectl("apply", "--server-side", "-f", str(MANIFESTS_DIR / "admission-heartbeat-leases.yaml"))
    kubectl("apply", "--server-side", "-n", LEASE_NAMESPACE, "-f", str(MANIFESTS_DIR / "rbac-agent.yaml"))
    accounts = {
        host: f"hoststate-agent-{service_name(host, binary).removesuffix('.' + binary)}" for binary, host in hosts
    }
    subjects = [{"kind": "ServiceAccount", "name": name, "namespace": LEASE_NAMESPACE} for name in accounts.values()]
    objects = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": LEASE_NAMESPACE}}
        for name in accounts.values()
    ] + [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "hoststate-agent-hosts", "namespace": LEASE_NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "hoststate-agent"},
            "subjects": subjects,
        }
    ]
    path = RUN_DIR / "agents.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    kubectl("apply", "--server-side", "-f", str(path))
    return {host: token_kubeconfig(kubectl, account, RUN_DIR) for host, account in accounts.items()}


def token_kubeconfig(kubectl: Kubectl, account: str, directory: Path) -> Path:
    """A kubeconfig of the current cluster with a token of the ServiceAccount `account` of the lease
    namespace (which is the install namespace): `directory`/<account>.kubeconfig."""
    cluster = yaml.safe_load(kubectl("config", "view", "--raw", "--minify", "--flatten", capture=True).stdout)
    token = kubectl("create", "token", account, "-n", LEASE_NAMESPACE, f"--duration={AGENT_DURATION}", capture=True)
    config = {**cluster, "users": [{"name": account, "user": {"token": token.stdout.strip()}}]}
    config["contexts"][0]["context"]["user"] = account
    path = directory / f"{account}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


OPERATOR_ACCOUNT = "hoststate-operator"
# What the operator's identity needs from the manifests: its ServiceAccount and RBAC, the election
# Lease (it may not create it), and the FlowSchemas that keep its election ahead of its fan-out.
OPERATOR_MANIFESTS = ("serviceaccounts.yaml", "rbac-operator.yaml", "leader-election.yaml", "flowschemas.yaml")


def operator_kubeconfig(kubectl: Kubectl, directory: Path, tenants: Iterable[str] = ()) -> Path:
    """The operator as it runs in a cluster: its ServiceAccount with the manifests' RBAC, election
    Lease and FlowSchemas (the admin token would be exempt from API Priority and Fairness: the
    election would not be classified as it is in production), allowed to read the signing keys of
    `tenants`. A kubeconfig with its token, in `directory`."""
    for manifest in OPERATOR_MANIFESTS:
        kubectl(
            "apply", "--server-side", "--force-conflicts", "-n", LEASE_NAMESPACE, "-f", str(MANIFESTS_DIR / manifest)
        )
    bindings = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "hoststate-signing-keys", "namespace": tenant},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "hoststate-operator-signing-keys",
            },
            "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_ACCOUNT, "namespace": LEASE_NAMESPACE}],
        }
        for tenant in tenants
    ]
    if bindings:
        path = directory / "operator-signing-keys.yaml"
        path.write_text(yaml.safe_dump_all(bindings))
        kubectl("apply", "--server-side", "-f", str(path))
    return token_kubeconfig(kubectl, OPERATOR_ACCOUNT, directory)


def sample_tenants() -> list[str]:
    """The sample tenants: the namespaces the samples create."""
    return [
        doc["metadata"]["name"]
        for path in sorted(SAMPLES_DIR.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "Namespace"
    ]


ADMIN_CLOUD = "hoststate-admin"
TENANT_ACCOUNT = "member"  # each sample tenant's user: reads its namespace's servers
TENANT_DURATION = "720h"


def tenant_tokens(kubectl: Kubectl, tenants: list[str]) -> dict[str, str]:
    """A ServiceAccount `member` in each tenant's namespace, allowed to read its servers (a Nova
    project member): tenant -> a token of it."""
    objects: list[dict] = []
    for tenant in tenants:
        meta = {"name": f"hoststate-{TENANT_ACCOUNT}", "namespace": tenant}
        objects += [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": TENANT_ACCOUNT, "namespace": tenant}},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": meta,
                "rules": [{"apiGroups": [API_GROUP], "resources": ["servers"], "verbs": ["get", "list", "watch"]}],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": meta["name"]},
                "subjects": [{"kind": "ServiceAccount", "name": TENANT_ACCOUNT, "namespace": tenant}],
            },
        ]
    path = RUN_DIR / "tenants.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    kubectl("apply", "--server-side", "-f", str(path))
    return {
        tenant: kubectl(
            "create", "token", TENANT_ACCOUNT, "-n", tenant, f"--duration={TENANT_DURATION}", capture=True
        ).stdout.strip()
        for tenant in tenants
    }


def clouds_config(auth_url: str, clouds: dict[str, tuple[str, str]]) -> dict:
    """clouds.yaml's content: cloud name -> (Kubernetes bearer token, project). keystoneauth's
    `v3token` plugin exchanges the token at the facade's identity API for one with a catalog; the
    compute API version is the facade's maximum, so `server list --long` has Host Status."""
    return {
        "clouds": {
            name: {
                "auth_type": "v3token",
                "auth": {
                    "auth_url": auth_url,
                    "token": token,
                    "project_name": project,
                    "project_domain_name": "Default",
                },
                "compute_api_version": MAX_VERSION,
            }
            for name, (token, project) in clouds.items()
        }
    }


def openrc(cloud: dict) -> dict[str, str]:
    """A v3token cloud of clouds_config as an openrc's OS_* variables, for the nova shell (which
    reads no clouds.yaml). Not for a shell that uses --os-cloud: these variables override the cloud's."""
    auth = cloud["auth"]
    return {
        "OS_AUTH_TYPE": cloud["auth_type"],
        "OS_AUTH_URL": auth["auth_url"],
        "OS_TOKEN": auth["token"],
        "OS_PROJECT_NAME": auth["project_name"],
        "OS_PROJECT_DOMAIN_NAME": auth["project_domain_name"],
    }


def write_clouds(path: Path, config: dict) -> None:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


class Children:
    """hoststate processes started by `make run`, stopped together."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.procs: list[HoststateProcess] = []

    def start(self, name: str, *args: str, kubeconfig: Path | None = None) -> None:
        """`hoststate <args>` as the admin, or as the identity of `kubeconfig`."""
        log = RUN_DIR / f"{name}.log"
        process = HoststateProcess(list(args), kubeconfig or self.kubeconfig, name, log=log).start()
        self.procs.append(process)
        print(f"started {name} (pid {process.pid}, log .run/{name}.log)")

    def exited(self) -> str | None:
        """The name of a child that exited, if any."""
        return next((process.name for process in self.procs if not process.running), None)

    def stop(self) -> None:
        for process in self.procs:
            process.stop()


def write_env(path: Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"export {key}={shlex.quote(value)}\n" for key, value in values.items()))
    path.chmod(0o600)


def run() -> int:
    RUN_DIR.mkdir(exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    bin_dir = control_plane_bin_dir()
    cluster: DevCluster | None = None
    children: Children | None = None
    given = os.environ.get("KUBECONFIG")
    try:
        if given:
            print(f"using the cluster of KUBECONFIG={given}")
            kubeconfig, env = Path(given), {"KUBECONFIG": given}
        else:
            print("starting the local control plane (etcd + kube-apiserver on 127.0.0.1) ...")
            cluster = DevCluster(bin_dir=bin_dir, workdir=RUN_DIR / "cluster")
            cluster.start()
            kubeconfig, env = local_cluster_env(cluster)
        facade_port = os.environ.get("HOSTSTATE_FACADE_PORT", "8774")
        facade_root = f"http://127.0.0.1:{facade_port}"
        env["HOSTSTATE_FACADE_URL"] = f"{facade_root}/v2.1"
        if cluster is not None:
            # The OpenStack clients' clouds (.run/clouds.yaml, below); the local admin's by default.
            env |= {"OS_CLIENT_CONFIG_FILE": str(RUN_DIR / "clouds.yaml"), "OS_CLOUD": ADMIN_CLOUD}
        env["PATH"] = f"{bin_dir}:{os.environ.get('PATH', '')}"
        write_env(RUN_DIR / "env", env)
        kubectl = Kubectl(bin_dir / "kubectl", kubeconfig)
        install_crds(kubectl)
        kubectl("apply", "--server-side", "-f", str(MANIFESTS_DIR / "namespace.yaml"))
        kubectl("apply", "--server-side", "-f", str(SAMPLES_DIR))

        children = Children(kubeconfig)
        start_operator_and_facade(children, facade_port, operator_kubeconfig(kubectl, RUN_DIR, sample_tenants()))
        if cluster is not None:
            write_client_settings(kubectl, cluster, facade_root)
        start_agents(children, kubectl)
        print(
            "\nhoststate is running. In another shell:\n"
            f"  source {RUN_DIR / 'env'}\n"
            "  kubectl get srv -A -w\n"
            f'  kubectl patch computeservice {service_name("compute1")} --type merge -p \'{{"spec":{{"forcedDown":true}}}}\'\n'
            f"  openstack compute service list --long    # the Nova facade at {env['HOSTSTATE_FACADE_URL']}\n"
            "  openstack server list --long --all-projects    # as the admin; --os-cloud tenant-a: a tenant\n"
            "Ctrl-C stops everything."
        )
        return wait_until_stopped(stop, children)
    finally:
        if children is not None:
            children.stop()
        if cluster is not None:
            cluster.stop()


def local_cluster_env(cluster: DevCluster) -> tuple[Path, dict[str, str]]:
    """The local cluster's kubeconfig (.run/kubeconfig) and the settings .run/env exports for it."""
    kubeconfig = RUN_DIR / "kubeconfig"
    kubeconfig.write_text(cluster.kubeconfig.read_text())
    kubeconfig.chmod(0o600)
    env = {
        "KUBECONFIG": str(kubeconfig),
        "HOSTSTATE_API_SERVER": cluster.server,
        "HOSTSTATE_ADMIN_TOKEN": cluster.admin_token,
    }
    return kubeconfig, env


def start_operator_and_facade(children: Children, facade_port: str, operator_identity: Path) -> None:
    """Both on this machine only (127.0.0.1): nothing of the local stack is on the network. The
    operator with its own identity (`operator_identity`, a kubeconfig), as in a cluster."""
    children.start(
        "operator",
        "operator",
        f"--lease-namespace={LEASE_NAMESPACE}",
        "--webhook-allow-cidr=127.0.0.1/32",  # webhooks to receivers on this machine: loopback is refused otherwise
        "--metrics-host=127.0.0.1",
        kubeconfig=operator_identity,
    )
    children.start(
        "facade",
        "facade",
        "--host=127.0.0.1",
        f"--port={facade_port}",
        "--metrics-host=127.0.0.1",
        f"--lease-namespace={LEASE_NAMESPACE}",
    )


def write_client_settings(kubectl: Kubectl, cluster: DevCluster, facade_root: str) -> None:
    """.run/clouds.yaml: the local admin (its project: the operator's namespace) and each tenant; .run/openrc."""
    clouds = {ADMIN_CLOUD: (cluster.admin_token, LEASE_NAMESPACE)}
    clouds |= {tenant: (token, tenant) for tenant, token in tenant_tokens(kubectl, sample_tenants()).items()}
    config = clouds_config(f"{facade_root}/identity/v3", clouds)
    # The way without the identity API: the token sent as it is to the compute endpoint.
    config["clouds"][f"{ADMIN_CLOUD}-token"] = {
        "auth_type": "admin_token",
        "auth": {"endpoint": f"{facade_root}/v2.1", "token": cluster.admin_token},
    }
    write_clouds(RUN_DIR / "clouds.yaml", config)
    write_env(RUN_DIR / "openrc", openrc(config["clouds"][ADMIN_CLOUD]))


def start_agents(children: Children, kubectl: Kubectl) -> None:
    """One agent process per sample service, each with its own host's identity (as outside Kubernetes)."""
    services = [(binary, host) for binary, hosts in sample_services().items() for host in hosts]
    identities = agent_kubeconfigs(kubectl, services)
    for binary, host in services:
        children.start(
            f"agent-{service_name(host, binary)}",
            "agent",
            f"--binary={binary}",
            f"--lease-namespace={LEASE_NAMESPACE}",
            f"--host={host}",
            kubeconfig=identities[host],
        )


def wait_until_stopped(stop: threading.Event, children: Children) -> int:
    """Until Ctrl-C (0), or until a child exits by itself (1: the stack is no longer whole)."""
    while not stop.wait(1):
        exited = children.exited()
        if exited:
            print(f"{exited} exited; see .run/{exited}.log. Stopping.")
            return 1
    print("stopping ...")
    return 0
