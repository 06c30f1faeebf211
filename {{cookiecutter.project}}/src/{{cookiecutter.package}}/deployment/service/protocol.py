"""uvicorn's HTTP protocol with the one timeout it lacks: a connection must finish a request's headers within
``header_timeout_s`` of opening (or of its previous answer), or it is closed. Without it, sockets that trickle
half a header would each hold a place under the connection limit for as long as they like (slowloris)."""


def with_header_timeout(header_timeout_s: float) -> type:
    """A protocol class for ``uvicorn.run(http=...)``: the implementation uvicorn would pick, plus the timeout."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # httptools is optional; h11 comes with uvicorn
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    class HeaderTimeoutProtocol(Base):
        _header_timer = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc) -> None:
            if self._header_timer:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._header_timer:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(header_timeout_s, self._close_if_idle, self.cycle)

        def _close_if_idle(self, cycle_when_armed) -> None:
            # A new request (a new cycle) has started since: its body and answer have limits of their own.
            if self.cycle is cycle_when_armed and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol
