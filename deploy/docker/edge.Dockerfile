# Kamailio (SIP edge) and rtpengine (media) from Debian's own packages, one image for
# both services of deploy/compose.yaml (each runs its own command).
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        kamailio kamailio-extra-modules kamailio-utils-modules kamailio-postgres-modules kamailio-websocket-modules \
        rtpengine-daemon \
    && rm -rf /var/lib/apt/lists/*
