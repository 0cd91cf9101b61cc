# eventlet must patch the standard library before anything imports it: nameko's
# containers hang in tests otherwise.
import eventlet

eventlet.monkey_patch()

pytest_plugins = ["tests.fixtures"]
