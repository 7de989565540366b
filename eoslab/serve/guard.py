"""What ``eoslab serve`` adds inside Voila's process: a kernel cap and quiet kernel errors.

Voila loads these classes by name through its own traitlets, which
:func:`eoslab.serve.voila.voila_argv` passes on its command line; nothing here runs in
``eoslab serve``'s own process, and nothing sits between the visitor and Voila.

:class:`CappedKernelManager` (``--VoilaConfiguration.multi_kernel_manager_class``) is the
kernel manager Voila builds on (it adds its pre-heated pools to it).  A chapter page costs
one kernel of :data:`~eoslab.serve.common.KERNEL_BYTES`, started for the request or taken
from a pool; it lives until the page unloads or culling reclaims it.  So the manager

* counts the kernels held by visitors, in all and per client address, and answers a page
  request beyond :attr:`~CappedKernelManager.max_kernels` or
  :attr:`~CappedKernelManager.max_kernels_per_client` with :data:`BUSY_PAGE` (HTTP 503,
  ``Retry-After``) instead of a kernel.  Pre-heated kernels waiting in a pool are not
  counted: the pools are bounded on their own (``--pool-size`` and ``--preheat``);
* starts no kernel for a page request whose client has already disconnected, and shuts
  down the kernel of one whose client disconnects before its page is sent (a reload, a
  cut connection, a script's ``GET``) as soon as Voila is done with the page, instead of
  leaving it to culling.  A kernel cannot be avoided altogether for such a request:
  Voila starts it before it sends the first byte, since the page is the output of
  running the notebook in it, and a client's leaving is only seen once the request is
  being served; so the kernel lives for the seconds the page takes (at most
  :attr:`~CappedKernelManager.abandoned_timeout` after the client left), not the culling
  timeout.

The request reaches the manager through Jupyter Server's
:class:`~jupyter_server.base.call_context.CallContext`, which holds the handler of the
request being served; Voila calls ``start_kernel`` (no pool) or ``get_rendered_notebook``
(pool) from that handler.  Behind a reverse proxy every visitor has the proxy's address,
so the per-client cap then acts as a second total.

:class:`QuietKernelConnection` (``--Voila.kernel_websocket_connection_class``) is the
kernel websocket.  When tracebacks are hidden (``MappingKernelManager.allow_tracebacks``
False, as ``eoslab serve`` sets unless ``--debug``) it replaces the traceback of every
``error`` message (the one a widget callback that raised sends, file paths and all), and
keeps the kernel's ``stderr`` stream from the visitor, where the kernel's own logging
writes the tracebacks of widget messages it could not handle.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from jupyter_server.base.call_context import CallContext
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.web import Finish
from traitlets import Float, Int

__all__ = ["BUSY_PAGE", "CappedKernelManager", "QuietKernelConnection"]

#: The answer to a page request over the kernel cap (HTTP 503, ``Retry-After``).
BUSY_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{retry}">
<title>The server is busy</title>
<style>body {{ font-family: sans-serif; max-width: 36em; margin: 4em auto; }}</style>
</head>
<body class="eoslab-busy">
<h1>The server is busy, try again in a minute</h1>
<p>Every chapter runs in a kernel of its own, and all the kernels this server can hold
are in use{who}. This page reloads itself in {retry} seconds.</p>
</body>
</html>
"""


def _page_handler(handler) -> bool:
    """Whether ``handler`` serves a notebook page (its kernel is a visitor's)."""
    if handler is None:
        return False
    from voila.handler import VoilaHandler

    return isinstance(handler, VoilaHandler)


def _disconnected(handler) -> bool:
    """Whether the client of ``handler`` has closed its connection."""
    stream = getattr(handler.request.connection, "stream", None)
    return stream is None or stream.closed()


class CappedKernelManager(AsyncMappingKernelManager):
    """Jupyter Server's kernel manager with a cap on visitors' kernels (see the module docs).

    ``eoslab serve`` passes ``--CappedKernelManager.max_kernels=N`` and
    ``--CappedKernelManager.max_kernels_per_client=M`` to Voila.
    """

    max_kernels = Int(0, min=0, config=True,
                      help="Kernels visitors may hold at once, all together (0: no cap).")
    max_kernels_per_client = Int(0, min=0, config=True,
                                 help="Kernels one client address may hold at once (0: no cap).")
    retry_after = Int(60, min=1, config=True,
                      help="Seconds a refused visitor is asked to wait (Retry-After).")
    abandoned_timeout = Float(60.0, min=0.0, config=True,
                              help="Seconds a kernel outlives a client that left before its "
                                   "page was sent, at most (it goes when the page is done).")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._owners: dict[str, str] = {}  # kernel id -> the client address it serves
        self._starting: Counter = Counter()  # client address -> kernels being started

    def __init_subclass__(cls, **kwargs):
        """Route Voila's pool (its subclass of this class) through the cap as well.

        With pre-heating on, Voila subclasses the kernel manager and adds
        ``get_rendered_notebook``, which hands a pooled kernel to a page request; the
        subclass's method is wrapped so that the hand-over is counted and capped too.
        """
        super().__init_subclass__(**kwargs)
        take = cls.__dict__.get("get_rendered_notebook")
        if take is None:
            return

        async def get_rendered_notebook(self, notebook_name, *args, **kwargs):
            handler = CallContext.get(CallContext.JUPYTER_HANDLER)
            if not _page_handler(handler):
                return await take(self, notebook_name, *args, **kwargs)
            address = self._admit(handler)
            try:
                result = await take(self, notebook_name, *args, **kwargs)
            finally:
                self._release(address)
            self._own(result[2], address, handler)
            return result

        get_rendered_notebook.__doc__ = take.__doc__
        cls.get_rendered_notebook = get_rendered_notebook

    # -- counting ------------------------------------------------------------------------
    def visitor_kernels(self, address: str | None = None) -> int:
        """Kernels held by visitors (of ``address``, or all), those being started included."""
        self._owners = {k: a for k, a in self._owners.items() if k in self}
        if address is None:
            return len(self._owners) + sum(self._starting.values())
        return sum(a == address for a in self._owners.values()) + self._starting[address]

    def _admit(self, handler) -> str:
        """Reserve a kernel for ``handler``'s client, or end its request (busy, or gone)."""
        address = handler.request.remote_ip or "?"
        if _disconnected(handler):
            self.log.info("eoslab: %s left before its page was sent; no kernel started",
                          address)
            raise Finish()
        if self.max_kernels and self.visitor_kernels() >= self.max_kernels:
            self._refuse(handler, address, f"total cap {self.max_kernels} reached",
                         "")
        if (self.max_kernels_per_client
                and self.visitor_kernels(address) >= self.max_kernels_per_client):
            self._refuse(handler, address, f"per-client cap {self.max_kernels_per_client} "
                         "reached",
                         f", {self.max_kernels_per_client} of them by your address")
        self._starting[address] += 1
        return address

    def _release(self, address: str) -> None:
        """The kernel reserved for ``address`` has started (or failed to)."""
        self._starting[address] -= 1
        if self._starting[address] <= 0:
            del self._starting[address]

    def _refuse(self, handler, address: str, why: str, who: str) -> None:
        """Answer ``handler`` with the busy page (HTTP 503) and end its request."""
        self.log.warning("eoslab: busy, refused a page to %s (%s)", address, why)
        handler.set_status(503)
        handler.set_header("Retry-After", str(self.retry_after))
        handler.set_header("Content-Type", "text/html; charset=UTF-8")
        handler.set_header("Cache-Control", "no-store")
        raise Finish(BUSY_PAGE.format(retry=self.retry_after, who=who))

    def _own(self, kernel_id: str, address: str, handler) -> None:
        """Record ``kernel_id`` as ``address``'s; shut it down if the client leaves early.

        A client gone before its kernel was ready ends the request at once.  One that
        leaves while the page is generated lets Voila finish the page (writing to nobody:
        shutting the kernel down under it makes Voila log errors, or wait for ever when the
        kernel had not answered yet) and its kernel is shut down when the page is done, or
        :attr:`abandoned_timeout` seconds after the client left.
        """
        self._owners[kernel_id] = address
        if _disconnected(handler):
            self._abandon(kernel_id, address)
            raise Finish()
        left: list = []
        on_close, on_finish = handler.on_connection_close, handler.on_finish

        def closed() -> None:
            on_close()
            if not getattr(handler, "_finished", False):
                left.append(True)
                self.log.info("eoslab: %s left before its page was sent; its kernel %s "
                              "goes once the page is done", address, kernel_id)
                asyncio.get_running_loop().call_later(self.abandoned_timeout, self._abandon,
                                                      kernel_id, address)

        def finished() -> None:
            on_finish()
            if left:
                self._abandon(kernel_id, address)

        handler.request.connection.set_close_callback(closed)
        handler.on_finish = finished  # tornado calls it once the response is complete

    def _abandon(self, kernel_id: str, address: str) -> None:
        """Shut down ``kernel_id``, whose client left before its page was sent (once)."""
        if self._owners.pop(kernel_id, None) is None or kernel_id not in self:
            return
        self.log.info("eoslab: shutting down kernel %s, whose client %s left", kernel_id,
                      address)
        asyncio.ensure_future(self.shutdown_kernel(kernel_id))

    # -- the request without a pool ------------------------------------------------------
    async def start_kernel(self, *args, **kwargs):
        """Start a kernel; a page request's kernel is capped and owned by its client.

        Pool kernels (``VOILA_PREHEAT=True`` in their environment) are not capped: the
        pools are bounded by their size.
        """
        handler = CallContext.get(CallContext.JUPYTER_HANDLER)
        pooled = (kwargs.get("env") or {}).get("VOILA_PREHEAT") == "True"
        if pooled or not _page_handler(handler):
            return await super().start_kernel(*args, **kwargs)
        address = self._admit(handler)
        try:
            kernel_id = await super().start_kernel(*args, **kwargs)
        finally:
            self._release(address)
        self._own(kernel_id, address, handler)
        return kernel_id


class QuietKernelConnection(ZMQChannelsWebsocketConnection):
    """The kernel websocket, without tracebacks when they are hidden (see the module docs)."""

    def handle_outgoing_message(self, stream, outgoing_msg) -> None:
        """Pass a kernel message on to the visitor, unless it is ``stderr`` output."""
        if not self.multi_kernel_manager.allow_tracebacks and self._stderr(stream,
                                                                           outgoing_msg):
            self.log.debug("eoslab: kept the stderr of kernel %s from its visitor",
                           self.kernel_id)
            return
        super().handle_outgoing_message(stream, outgoing_msg)

    def _on_error(self, channel, msg, msg_list) -> None:
        """Replace the traceback of an ``error`` message (Jupyter Server's, repaired).

        Jupyter Server 2 reads ``traceback_replacement_message`` from the kernel's own
        manager, which has no such attribute: the message is then lost and the server logs
        an ``AttributeError`` for each.  This reads it from the multi-kernel manager.
        """
        manager = self.multi_kernel_manager
        if manager.allow_tracebacks or channel != "iopub":
            return
        msg["header"] = self.get_part("header", msg["header"], msg_list)
        if msg["header"]["msg_type"] != "error":
            return
        msg["content"] = self.get_part("content", msg["content"], msg_list)
        msg["content"].update(ename="ExecutionError", evalue="Execution error",
                              traceback=[manager.traceback_replacement_message])
        if self.subprotocol == "v1.kernel.websocket.jupyter.org":
            msg_list[3] = self.session.pack(msg["content"])

    def _stderr(self, stream, outgoing_msg) -> bool:
        channel = stream if isinstance(stream, str) else getattr(stream, "channel", None)
        if channel != "iopub":
            return False
        try:
            _, parts = self.session.feed_identities(outgoing_msg)
            header = self.session.unpack(parts[1])
            if header.get("msg_type") != "stream":
                return False
            return self.session.unpack(parts[4]).get("name") == "stderr"
        except Exception:  # noqa: BLE001 - a message we cannot read is not passed on
            return True
