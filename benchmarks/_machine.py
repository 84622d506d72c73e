"""The machine a benchmark ran on, for the figures it prints: every figure
recorded in BENCHMARKS.md names its CPU, since csae's speed differs between
CPUs (AMD Zen 3, Zen 4, Intel Xeon) and their instruction sets."""

import platform
import subprocess


def cpu_name():
    """The CPU's model name from /proc/cpuinfo (else platform's), with
    lscpu's family and model numbers when lscpu is there: virtual machines
    often report only "AMD EPYC", and the numbers tell Zen 3 from Zen 4."""
    name = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    name = name or platform.processor()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        family, model = fields.get("CPU family", "").strip(), fields.get("Model", "").strip()
        if family and model:
            name += f" (family {family} model {model})"
    except (OSError, subprocess.SubprocessError):
        pass
    return name or "unknown CPU"
