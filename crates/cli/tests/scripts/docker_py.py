# The Docker SDK for Python (docker-py, Debian's python3-docker) against
# `berth serve`: run by crates/cli/tests/api.rs (docker_py_sdk) with the
# server's socket URL as the argument. Every step asserts what it got.
import io
import sys
import tarfile
import threading
import time

import docker

c = docker.DockerClient(base_url=sys.argv[1], version="auto")


def tar_of(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


# System.
assert c.ping()
assert c.version()["ApiVersion"] == "1.45"
assert c.info()["OSType"] == "linux"
assert any("busybox:latest" in i.tags for i in c.images.list())

# run (attached, --rm) and run -d.
out = c.containers.run("busybox", ["echo", "py-hello"], network_mode="none", remove=True)
assert out == b"py-hello\n", out
ct = c.containers.run(
    "busybox",
    ["sh", "-c", "echo out-line; echo err-line >&2; exec sleep 60"],
    detach=True,
    network_mode="none",
    name="py1",
)
ct.reload()
assert ct.status == "running", ct.status
assert [x.name for x in c.containers.list()] == ["py1"]
assert [x.name for x in c.containers.list(filters={"name": "py1"})] == ["py1"]

# logs: whole, by stream, followed.
deadline = time.time() + 10
while b"err-line" not in ct.logs():
    assert time.time() < deadline, ct.logs()
    time.sleep(0.05)
assert ct.logs(stdout=True, stderr=False) == b"out-line\n", ct.logs(stderr=False)
assert ct.logs(stdout=False, stderr=True) == b"err-line\n"
got = b""
follow = ct.logs(stream=True, follow=True)
for chunk in follow:
    got += chunk
    if b"out-line" in got and b"err-line" in got:
        break
follow.close()

# exec: exit code, environment, working directory, separate streams.
r = ct.exec_run(["sh", "-c", "echo in-exec; exit 3"])
assert r.exit_code == 3 and r.output == b"in-exec\n", r
r = ct.exec_run(["sh", "-c", "echo $X; pwd"], environment={"X": "y"}, workdir="/tmp")
assert r.output == b"y\n/tmp\n", r
r = ct.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
assert r.output == (b"o\n", b"e\n"), r

# logs of a finished container through attach(logs=True).
lg = c.containers.run("busybox", ["sh", "-c", "echo logged-before"], detach=True, network_mode="none")
assert lg.wait()["StatusCode"] == 0
assert lg.attach(stdout=True, stderr=True, stream=False, logs=True) == b"logged-before\n"
lg.remove()

# cp both ways (archive PUT and GET).
assert ct.put_archive("/tmp", tar_of({"put.txt": b"py-archive\n"}))
stream, stat = ct.get_archive("/tmp/put.txt")
raw = b"".join(stream)
with tarfile.open(fileobj=io.BytesIO(raw)) as t:
    assert t.extractfile("put.txt").read() == b"py-archive\n"
assert stat["name"] == "put.txt", stat

# stats, one-shot.
s = ct.stats(stream=False)
assert s["name"] == "/py1" and s["pids_stats"]["current"] >= 1, s
assert s["memory_stats"]["usage"] > 0, s

# commit, then run the new image.
ct.exec_run(["sh", "-c", "echo committed > /tmp/c.txt"])
img = ct.commit(repository="pycommit", tag="1", changes=["ENV FOO=bar"])
assert "pycommit:1" in img.tags, img.tags
out = c.containers.run("pycommit:1", ["sh", "-c", "cat /tmp/c.txt; echo $FOO"], network_mode="none", remove=True)
assert out == b"committed\nbar\n", out

ct.stop(timeout=1)
assert ct.wait()["StatusCode"] == 137
ct.remove()

# images: tag, inspect, build, remove.
bb = c.images.get("busybox")
assert bb.tag("pytag", "v1")
assert "pytag:v1" in c.images.get("pytag:v1").tags
assert c.images.get("pytag:v1").id == bb.id
c.images.remove("pytag:v1")
try:
    c.images.get("pytag:v1")
    raise SystemExit("pytag:v1 still there")
except docker.errors.ImageNotFound:
    pass
ctx = tar_of({
    "Dockerfile": b"FROM busybox\nARG WHO=nobody\nCOPY f.txt /f.txt\nRUN echo \"built for $WHO\" >> /f.txt\n",
    "f.txt": b"from-context\n",
})
built, logs = c.images.build(
    fileobj=io.BytesIO(ctx),
    custom_context=True,
    tag="pybuild:1",
    buildargs={"WHO": "py"},
    labels={"via": "docker-py"},
)
assert "pybuild:1" in built.tags, built.tags
assert built.labels.get("via") == "docker-py", built.labels
assert any("stream" in l for l in logs)
out = c.containers.run("pybuild:1", ["cat", "/f.txt"], network_mode="none", remove=True)
assert out == b"from-context\nbuilt for py\n", out
try:
    c.images.build(fileobj=io.BytesIO(tar_of({"Dockerfile": b"FROM busybox\nRUN exit 7\n"})), custom_context=True)
    raise SystemExit("a failing build succeeded")
except docker.errors.BuildError as e:
    assert "7" in str(e), e
c.images.remove("pybuild:1")
c.images.remove("pycommit:1")

# volumes: create with labels, write through one container, read through another.
v = c.volumes.create("pyvol", labels={"a": "b"})
assert "pyvol" in [x.name for x in c.volumes.list()]
assert c.volumes.get("pyvol").attrs["Labels"] == {"a": "b"}
c.containers.run("busybox", ["sh", "-c", "echo vol-data > /v/f"], volumes={"pyvol": {"bind": "/v", "mode": "rw"}},
                 network_mode="none", remove=True)
out = c.containers.run("busybox", ["cat", "/v/f"], volumes=["pyvol:/v:ro"], network_mode="none", remove=True)
assert out == b"vol-data\n", out
v.remove()
assert "pyvol" not in [x.name for x in c.volumes.list()]

# networks: a user network, connect with an alias, name resolution, disconnect.
assert {"bridge", "host", "none"} <= {n.name for n in c.networks.list()}
net = c.networks.create("pynet", labels={"n": "1"})
srv = c.containers.run("busybox", ["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"], detach=True, name="pysrv",
                       network="pynet")
other = c.networks.create("pynet2")
cli = c.containers.run("busybox", ["sleep", "60"], detach=True, name="pycli", network="pynet2")
net.reload()
assert [x.name for x in net.containers] == ["pysrv"], net.containers
net.connect(cli, aliases=["pyalias"])
net.reload()
assert sorted(x.name for x in net.containers) == ["pycli", "pysrv"]
r = cli.exec_run(["wget", "-qO-", "http://pysrv/hostname"])
assert r.exit_code == 0 and r.output.strip() == srv.attrs["Config"]["Hostname"].encode(), r
r = srv.exec_run(["busybox", "nslookup", "pyalias"])
assert r.exit_code == 0, r
net.disconnect(cli)
net.reload()
assert [x.name for x in net.containers] == ["pysrv"]
srv.remove(force=True)
cli.remove(force=True)
net.remove()
other.remove()
assert "pynet" not in [n.name for n in c.networks.list()]

# events: a live stream, filtered, while a container comes and goes.
seen = []
stream = c.events(decode=True, filters={"type": "container", "container": "pyev"})


def read_events():
    for e in stream:
        seen.append(e["Action"])
        if e["Action"] == "destroy":
            return


reader = threading.Thread(target=read_events, daemon=True)
reader.start()
time.sleep(0.3)
ev = c.containers.run("busybox", ["sh", "-c", "sleep 0.3; exit 4"], detach=True, name="pyev", network_mode="none")
assert ev.wait()["StatusCode"] == 4
ev.remove()
reader.join(10)
stream.close()
assert seen == ["create", "start", "die", "destroy"], seen

try:
    c.containers.get("nosuch")
    raise SystemExit("no error for an unknown container")
except docker.errors.NotFound:
    pass
print("docker-py ok")
