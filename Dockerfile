# The cronvisor container image. Build: docker build -t cronvisor .
# Run:  docker run -e CRONVISOR_TOKEN=... -p 8080:8080 -v cronvisor-data:/var/lib/cronvisor cronvisor
# scripts/image.sh assembles the same runtime filesystem without a container engine.

FROM debian:12-slim AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN bash scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DCV_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" \
 && install -m 0755 /build/cronvisor /usr/local/bin/cronvisor

FROM debian:12-slim
# The binary's shared libraries as Debian runtime packages (the list scripts/image.sh installs),
# tzdata for the jobs' time zones, ca-certificates for webhooks and probes over TLS.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libh2o0.13 libwslay1 libssl3 libpq5 libhiredis0.14 libcurl4 libsqlite3-0 \
      libjansson4 libcyaml1 libyaml-0-2 zlib1g tzdata ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd -g 10001 cronvisor \
 && useradd -u 10001 -g 10001 -d /var/lib/cronvisor -s /usr/sbin/nologin cronvisor \
 && install -d -m 0750 -o cronvisor -g cronvisor /var/lib/cronvisor
COPY --from=build /usr/local/bin/cronvisor /usr/local/bin/cronvisor
COPY deploy/image/cronvisor.yaml /etc/cronvisor/cronvisor.yaml
ENV CRONVISOR_CONFIG=/etc/cronvisor/cronvisor.yaml
USER 10001:10001
WORKDIR /var/lib/cronvisor
VOLUME ["/var/lib/cronvisor"]
EXPOSE 8080
# No curl in the image: bash's /dev/tcp asks /healthz (no token needed) and wants a 200.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"]
ENTRYPOINT ["cronvisor", "run"]
