"""Local real infrastructure without Docker: `triage infra up | down | status`.

- Apache Kafka 3.9 in KRaft mode (one node, broker + controller), run from its Maven Central jars (kafka.py);
  or, with `--brokers 3`, a cluster of three such nodes, replication factor 3 and min.insync.replicas 2 (cluster.py).
- FerretDB v1.24.2 (MongoDB wire protocol over SQLite), built from the Go module in deploy/ferretdb (ferretdb.py).
- Prometheus from Debian's package, scraping the local run and evaluating deploy/prometheus/rules (prometheus.py).

They run as detached processes owned by a state dir (component.py); control.py starts, stops and
inspects them together; host.py holds the process, port and file helpers they share.
"""

from tools.infra.cluster import ClusterLayout, KafkaNode, LocalKafkaCluster
from tools.infra.component import (
    DEFAULT_READY_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    DESK_API_PORTS,
    OPEN311_PORTS,
    PIPELINE_PORTS,
    ComponentStatus,
    Endpoints,
    LocalComponent,
    default_cache_dir,
    default_state_dir,
)
from tools.infra.control import all_ready, down, format_status, main, status, up
from tools.infra.ferretdb import LocalFerretDB
from tools.infra.host import HOST, InfraError, Progress, free_port
from tools.infra.kafka import LocalKafka
from tools.infra.prometheus import LocalPrometheus

__all__ = [
    "DEFAULT_READY_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "DESK_API_PORTS",
    "HOST",
    "OPEN311_PORTS",
    "PIPELINE_PORTS",
    "ClusterLayout",
    "ComponentStatus",
    "Endpoints",
    "InfraError",
    "KafkaNode",
    "LocalComponent",
    "LocalFerretDB",
    "LocalKafka",
    "LocalKafkaCluster",
    "LocalPrometheus",
    "Progress",
    "all_ready",
    "default_cache_dir",
    "default_state_dir",
    "down",
    "format_status",
    "free_port",
    "main",
    "status",
    "up",
]
