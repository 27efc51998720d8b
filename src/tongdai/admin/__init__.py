"""Administration: one service layer for the CLI, the admin REST API and the console.

``service.AdminService`` holds every rule about changing the configuration (which app
a caller may touch, password lengths, what each change is logged as); the CLI
(``tongdai.cli``), the admin API (``admin/api.py``) and the console
(``tongdai.console``) only parse input, call it and render what it returns.
"""
