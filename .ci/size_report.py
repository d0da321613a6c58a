#!/usr/bin/env python3
"""Ember's .text + .rodata per component in a linked bare-metal image, from the GNU ld map file
(-Wl,-Map): input sections kept after --gc-sections, summed by the object they come from.
  python3 .ci/size_report.py IMAGE.map [--limit BYTES]
Prints one line per component and the total; with --limit, exits 1 where the total exceeds it."""
import re
import sys

COMPONENTS = [  # (component, object-name prefixes inside libember.a / the platform library)
    ("loader", ("model.cc",)),
    ("tokenizer", ("tokenizer", "api_tokenizer.cc")),
    ("forward", ("forward.cc", "linear.cc", "context.cc", "thread_pool.cc", "xnnpack_linear.cc")),
    ("kernels", ("dispatch.cc", "f32-", "u8s8-", "f16-", "bf16-")),
    ("sampler", ("sampler.cc",)),
    ("api", ("api.cc", "generate.cc", "batcher.cc", "status.cc")),
    ("platform", ("platform_",)),
]


def component(obj):
    for name, prefixes in COMPONENTS:
        if obj.startswith(prefixes):
            return name
    return "other"


def main():
    path = sys.argv[1]
    limit = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else None
    sizes = {}
    out_section = None
    in_map = False
    pending = None  # an input section name whose address/size/file are on the next line
    for line in open(path, encoding="utf-8", errors="replace"):
        if line.startswith("Linker script and memory map"):
            in_map = True
            continue
        if not in_map:
            continue
        m = re.match(r"^(\.\S+)", line)
        if m:
            out_section = m.group(1)
            pending = None
            continue
        m = re.match(r"^ (\.\S+)\s*$", line)
        if m:
            pending = m.group(1)
            continue
        m = re.match(r"^ (\.\S+)?\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+)$", line)
        if not m or (m.group(1) is None and pending is None):
            pending = None
            continue
        pending = None
        if out_section not in (".text", ".rodata"):
            continue
        lib = re.search(r"lib(ember|ember_platform_\w+)\.a\(([^)]+)\)$", m.group(3))
        if not lib:
            continue
        key = component(lib.group(2))
        sizes.setdefault(key, [0, 0])
        sizes[key][0 if out_section == ".text" else 1] += int(m.group(2), 16)
    total = 0
    for name, _ in COMPONENTS + [("other", ())]:
        if name in sizes:
            t, r = sizes[name]
            total += t + r
            print("%-10s .text %7d  .rodata %7d  = %7d bytes" % (name, t, r, t + r))
    print("%-10s %44d bytes (%.1f KB)" % ("total", total, total / 1024.0))
    if limit is not None and total > limit:
        print("size: FAILED: %d bytes of Ember code and read-only data, more than %d" % (total, limit))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
