"""
Upgrade checks for project.common.adapters: each fails loudly when a library
changes the internal an adapter relies on, so the adapter is revisited
rather than silently wrong.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import textwrap

from channels.consumer import AsyncConsumer

from project.common import adapters


def _body(function) -> str:
    """The function's statements, without its docstring, as ast.unparse writes them."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]
    statements = tree.body
    if isinstance(statements[0], ast.Expr) and isinstance(statements[0].value, ast.Constant):
        statements = statements[1:]
    return "\n".join(ast.unparse(statement) for statement in statements)


def test_channels_dispatch_is_still_the_handler_lookup_plus_the_connection_sweep():
    """SkipConnectionSweep copies AsyncConsumer.dispatch minus the sweep; a change there shows."""
    assert _body(AsyncConsumer.dispatch) == textwrap.dedent(
        """\
        handler = getattr(self, get_handler_name(message), None)
        if handler:
            await aclose_old_connections()
            await handler(message)
        else:
            raise ValueError('No handler for message type %s' % message['type'])"""
    )


def test_daphne_and_twisted_still_have_what_the_graceful_close_uses():
    """close_sockets_on_shutdown: reactor._eventTriggers and Daphne's kill_all_applications."""
    check = textwrap.dedent(
        """
        import daphne.server
        from twisted.internet import reactor
        from daphne.server import Server
        assert isinstance(reactor._eventTriggers, dict)
        assert callable(Server.kill_all_applications)
        assert "self.connections" in __import__("inspect").getsource(Server)
        assert "self.listeners" in __import__("inspect").getsource(Server)
        from project.common.adapters import close_sockets_on_shutdown
        assert close_sockets_on_shutdown(1.0)
        event = reactor._eventTriggers["shutdown"]
        assert any(c.__name__ == "before_shutdown" for c, _, _ in event.before)
        """
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_client_gone_error_is_autobahns_disconnected():
    """QuietWhenClientLeft drops sends Daphne refuses with autobahn's Disconnected."""
    from autobahn.exception import Disconnected

    assert adapters.ClientGone is Disconnected


def test_isizulu_is_known_to_django_as_a_language():
    """The admin's language menu asks get_language_info for every LANGUAGES entry."""
    from django.utils.translation import get_language_info

    assert get_language_info("zu")["name_local"] == "isiZulu"
    assert get_language_info("af")["name_local"] == "Afrikaans"


def test_daphne_twisted_and_autobahn_still_have_what_the_socket_limits_use():
    """
    gate_replies, unread_bytes, is_closing, gate_messages, pause_reading and
    ignore_input: Daphne's send is partial(handle_reply, protocol), its
    onMessage queues for the application, Twisted's TCP buffer and producer
    methods, autobahn's states.
    """
    check = textwrap.dedent(
        """
        import inspect
        import daphne.server
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
        from twisted.internet import abstract, tcp
        source = inspect.getsource(Server.create_application)
        assert "send=partial(self.handle_reply, protocol)" in source
        assert "application_queue.put_nowait" in inspect.getsource(WebSocketProtocol.onMessage)
        for name in ("dataBuffer", "offset", "_tempDataLen"):
            assert name in inspect.getsource(abstract.FileDescriptor), name
        assert issubclass(tcp.Connection, abstract.FileDescriptor)
        for name in ("pauseProducing", "resumeProducing", "connected", "disconnecting"):
            assert hasattr(tcp.Connection, name), name
        assert "return len(self.data) > 0" in inspect.getsource(WebSocketProtocol.processData)
        assert WebSocketProtocol.STATE_CLOSING != WebSocketProtocol.STATE_OPEN
        assert hasattr(WebSocketProtocol, "STATE_CLOSED")
        assert callable(WebSocketProtocol.sendClose) and callable(WebSocketProtocol.sendMessage)

        import asyncio
        from project.common.adapters import gate_messages, gate_replies
        sent = []
        async def handle_reply(self, protocol, message):
            sent.append(message)
        Server.handle_reply = handle_reply  # Daphne's own, stood in for
        assert gate_replies(lambda protocol, message: None if message == "no" else message)
        server = Server.__new__(Server)
        asyncio.run(server.handle_reply("the protocol", "no"))
        asyncio.run(server.handle_reply("the protocol", "yes"))
        assert sent == ["yes"]
        calls = []
        assert gate_messages(lambda protocol: calls.append(protocol) or False)
        protocol = WebSocketProtocol.__new__(WebSocketProtocol)
        protocol.onMessage(b"{}", False)  # refused: never reaches the (missing) queue
        assert calls == [protocol]
        """
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_ninja_operations_still_tell_whether_they_take_a_body():
    """reads_body: Operation.run bound, Operation.models with __ninja_param_source__."""
    from ninja.operation import Operation

    from dispatch.rest_api import ride_router
    from people.caregiver_api import caregiver_router
    from project import api  # noqa: F401  (mounting applies the API's decorators)

    (accept,) = caregiver_router.path_operations["/{int:link_id}/accept/"].operations
    (cancel,) = ride_router.path_operations["/{ride_id}/cancel/"].operations
    for operation in (accept, cancel):
        assert isinstance(operation, Operation)
        assert inspect.unwrap(operation.run).__self__ is operation
    assert {m.__ninja_param_source__ for m in cancel.models} >= {"body"}
    assert adapters.reads_body(inspect.unwrap(cancel.run))
    assert not adapters.reads_body(inspect.unwrap(accept.run))
    assert adapters.reads_body(lambda request: None)
