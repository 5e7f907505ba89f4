"""Call flows: the file format, its validation, and the pure engine that runs one on answer.

- :mod:`shared.flow.model`: parsing a document into frozen steps;
- :mod:`shared.flow.validate`: graph, URI and placeholder rules;
- :mod:`shared.flow.wav`, :mod:`shared.flow.load`: prompt WAV checks and reading a flow file;
- :mod:`shared.flow.engine`: ``(state, event) -> (state, actions)``, with the
  listening steps in :mod:`shared.flow.listen`;
- :mod:`shared.flow.signals`, :mod:`shared.flow.state`: the events, actions and
  state it speaks in;
- :mod:`shared.flow.outcome`: the business outcome of a finished flow.

No I/O library is imported here: the SIP runner (worker.flow_runner) and the
stores (producer.prompts) are the adapters.
"""

from shared.flow.model import Flow, FlowError, Step, parse_flow
from shared.flow.validate import check_columns, flow_placeholders, render_text, validate_flow

__all__ = ["Flow", "FlowError", "Step", "check_columns", "flow_placeholders", "parse_flow", "render_text",
           "validate_flow"]
