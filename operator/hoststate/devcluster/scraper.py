"""What Prometheus would scrape from a /metrics endpoint, for the tests and the benchmarks."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, float]  # by series, spelt as in the exposition format: name{label="value",...}


def series(name: str, /, **labels: str) -> str:
    """A sample's key: `name`, or `name{a="1",b="2"}` with the labels sorted (a label may be called `name`)."""
    if not labels:
        return name
    return name + "{" + ",".join(f'{key}="{value}"' for key, value in sorted(labels.items())) + "}"


def parse(text: str) -> Samples:
    return {
        series(sample.name, **sample.labels): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(url: str) -> Samples:
    """The samples `url` (a /metrics endpoint) serves now."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return parse(response.read().decode())


def total(samples: Samples, name: str) -> float:
    """A metric's samples summed over all their labels (0 when it has none)."""
    return sum(value for key, value in samples.items() if key == name or key.startswith(name + "{"))
