#!/usr/bin/python3
"""Wire compatibility of CRI v1alpha2 (what kubelet 1.20 speaks) with our
runtime.v1 proto.

Usage: compare-protos.py V1ALPHA2.proto

The upstream file and ours (src/cri/v1alpha2/api_v1alpha2.proto, the services we
serve as runtime.v1alpha2 on top of the runtime.v1 messages of
src/cri/api.proto) go through Debian's protoc (--descriptor_set_out); the
gogoproto import and options of the upstream file are dropped first (they
change Go code generation, not the wire). It checks that every v1alpha2 RPC
is in our v1alpha2 services with the same request/response types and
streaming flags, and that every v1alpha2 message and enum is in our
runtime.v1 under the same name: fields with the same number, wire type,
label and message/enum type; enum values with the same numbers. It prints
one line per difference, then a summary; exit status 0 when v1alpha2 is a
wire subset of what we serve.

Field names are reported when they differ but do not count as differences:
names are not on the wire.
"""
import os
import re
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2 as dpb

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOGO = re.compile(r'^\s*(import\s+"github\.com/gogo/[^"]*";|option\s+\(gogoproto\.[^;]*;)\s*$', re.M)


def descriptors(proto_dir, name, imports_dir=None):
    """The FileDescriptorProtos of `name` (in proto_dir) and of what it
    imports (from proto_dir, or imports_dir)."""
    paths = [f"--proto_path={proto_dir}"] + ([f"--proto_path={imports_dir}"] if imports_dir else [])
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "fds.pb")
        subprocess.run(["protoc", *paths, "--include_imports", f"--descriptor_set_out={out}",
                        os.path.join(proto_dir, name)], check=True)
        fds = dpb.FileDescriptorSet()
        with open(out, "rb") as f:
            fds.ParseFromString(f.read())
    return {fd.name: fd for fd in fds.file}


def upstream(path):
    with open(path, encoding="utf-8") as f:
        text = GOGO.sub("", f.read())
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "api.proto"), "w", encoding="utf-8") as f:
            f.write(text)
        return descriptors(tmp, "api.proto")["api.proto"]


def index(fd, services_fd=None):
    """Relative names ("Container", "Foo.Bar") to descriptors; the services
    from `services_fd` when given."""
    msgs, enums, methods = {}, {}, {}

    def walk(prefix, m):
        name = prefix + m.name
        msgs[name] = m
        for e in m.enum_type:
            enums[name + "." + e.name] = e
        for n in m.nested_type:
            walk(name + ".", n)

    for m in fd.message_type:
        walk("", m)
    for e in fd.enum_type:
        enums[e.name] = e
    for s in (services_fd or fd).service:
        for meth in s.method:
            methods[s.name + "/" + meth.name] = meth
    return msgs, enums, methods


def rel(type_name, package):
    """".runtime.v1alpha2.Foo" -> "Foo"."""
    prefix = "." + package + "."
    return type_name[len(prefix):] if type_name.startswith(prefix) else type_name


TYPE = {v: k[5:].lower() for k, v in dpb.FieldDescriptorProto.Type.items()}
LENGTH_DELIMITED_SCALARS = {dpb.FieldDescriptorProto.TYPE_STRING, dpb.FieldDescriptorProto.TYPE_BYTES}
LABEL = {v: k[6:].lower() for k, v in dpb.FieldDescriptorProto.Label.items()}


def compare(old_path):
    old = upstream(old_path)
    ours = descriptors(os.path.join(TOP, "src", "cri", "v1alpha2"), "api_v1alpha2.proto",
                       os.path.join(TOP, "src", "cri"))
    new = ours["api.proto"]
    om, oe, ometh = index(old)
    nm, ne, nmeth = index(new, ours["api_v1alpha2.proto"])
    diffs, notes = [], []
    counts = dict(methods=0, messages=0, fields=0, enums=0, values=0)

    for name, m in ometh.items():
        counts["methods"] += 1
        n = nmeth.get(name)
        if n is None:
            diffs.append(f"rpc {name}: missing")
            continue
        for attr in ("input_type", "output_type"):
            a, b = rel(getattr(m, attr), old.package), rel(getattr(n, attr), new.package)
            if a != b:
                diffs.append(f"rpc {name}: {attr} {a} vs {b}")
        if (m.client_streaming, m.server_streaming) != (n.client_streaming, n.server_streaming):
            diffs.append(f"rpc {name}: streaming flags differ")

    for name, m in om.items():
        counts["messages"] += 1
        n = nm.get(name)
        if n is None:
            diffs.append(f"message {name}: missing")
            continue
        by_number = {f.number: f for f in n.field}
        for f in m.field:
            counts["fields"] += 1
            g = by_number.get(f.number)
            where = f"{name}.{f.name} = {f.number}"
            if g is None:
                diffs.append(f"{where}: no field with this number in ours")
                continue
            if f.type != g.type:
                if {f.type, g.type} == LENGTH_DELIMITED_SCALARS:
                    # Same wire type (length-delimited); only proto3's
                    # UTF-8 check on string differs.
                    notes.append(f"{where}: {TYPE[f.type]} here, {TYPE[g.type]} in ours (same wire type)")
                else:
                    diffs.append(f"{where}: type {TYPE[f.type]} vs {TYPE[g.type]}")
            if f.label != g.label:
                diffs.append(f"{where}: label {LABEL[f.label]} vs {LABEL[g.label]}")
            if f.type_name or g.type_name:
                a, b = rel(f.type_name, old.package), rel(g.type_name, new.package)
                if a != b:
                    diffs.append(f"{where}: type {a} vs {b}")
            if f.HasField("oneof_index") != g.HasField("oneof_index"):
                diffs.append(f"{where}: oneof membership differs")
            if f.name != g.name:
                notes.append(f"{where}: named {g.name} in ours")
        extra = sorted(set(by_number) - {f.number for f in m.field})
        if extra:
            notes.append(f"{name}: ours adds " +
                         ", ".join(f"{by_number[k].name} = {k}" for k in extra))

    for name, e in oe.items():
        counts["enums"] += 1
        n = ne.get(name)
        if n is None:
            diffs.append(f"enum {name}: missing")
            continue
        by_number = {v.number: v.name for v in n.value}
        for v in e.value:
            counts["values"] += 1
            if v.number not in by_number:
                diffs.append(f"enum {name}.{v.name} = {v.number}: missing")
            elif by_number[v.number] != v.name:
                notes.append(f"enum {name}.{v.name} = {v.number}: named {by_number[v.number]} in ours")

    extra_methods = sorted(set(nmeth) - set(ometh))
    for name in extra_methods:
        diffs.append(f"rpc {name}: served as v1alpha2 but not in v1alpha2")
    for line in notes:
        print("note:", line)
    for line in diffs:
        print("DIFF:", line)
    print(f"v1alpha2 {old.package} vs {new.package}: {counts['methods']} RPCs, {counts['messages']} messages, "
          f"{counts['fields']} fields, {counts['enums']} enums, {counts['values']} enum values compared; "
          f"{len(diffs)} wire differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(compare(sys.argv[1]))
