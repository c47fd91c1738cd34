"""Builds the tcpsim client: the protobuf and gRPC stubs are generated from the repository's
proto/ by grpcio-tools when the package is built, so they always match the server beside them;
nothing generated is checked in."""

import pathlib

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
PROTO = "tcpsim/v1/simulator.proto"


class BuildWithStubs(build_py):
    """build_py, then the stubs for tcpsim/v1/simulator.proto into tcpsim/v1/."""

    def run(self):
        super().run()
        from grpc_tools import protoc

        out = pathlib.Path(self.build_lib)
        (out / "tcpsim" / "v1").mkdir(parents=True, exist_ok=True)
        include = pathlib.Path(protoc.__file__).parent / "_proto"
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO_ROOT / PROTO),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"grpcio-tools could not compile {PROTO_ROOT / PROTO}")


setup(cmdclass={"build_py": BuildWithStubs})
