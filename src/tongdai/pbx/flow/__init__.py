"""The call-flow runtime: what runs a DID's flow once tongdai answered the caller.

``sdp`` (codec choice, pure), ``directory`` (flows, queues and pauses cached by
configuration version), ``targets`` (names to dialees), ``acd`` (queues and agent
states), ``runner`` (one call's flow), ``runtime`` (the driver's side of it).
"""
