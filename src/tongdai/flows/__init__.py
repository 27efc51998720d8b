"""Call-centre routing: flow documents (``document``), their checks against an app
(``check``), and the flows, queues and paused agents in the database (``store``)."""
