"""python -m gears_standin --port P --upstream HOST:PORT [--upstream-password PW]"""
import argparse
import logging
import os
import sys


def main(argv=None):
    p = argparse.ArgumentParser(prog="gears_standin")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--upstream", required=True, help="HOST:PORT of the real Redis")
    p.add_argument("--upstream-password", default=os.environ.get("GEARS_STANDIN_UPSTREAM_PASSWORD"))
    p.add_argument("--upstream-user", default=None)
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    logging.basicConfig(level=a.log_level, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(threadName)s %(name)s "
                               "%(levelname)s %(message)s")
    from .engine import Engine
    from .server import serve

    host, _, port = a.upstream.rpartition(":")
    engine = Engine(host or "127.0.0.1", int(port), a.upstream_password, a.upstream_user)
    engine.start()
    serve(engine, a.bind, a.port)


if __name__ == "__main__":
    main()
