# The MNIST training server as a small, static, non-root image.
#
#   docker build -t nnserver .
#   docker run -p 8000:8000 -v nnserver-models:/app/models nnserver
#
# test/container (go test ./test/container) runs the go build lines below
# exactly as written, then checks the binary the way this image runs it. See
# docs/DEPLOY.md.

# --- build stage: the Go toolchain, thrown away afterwards -----------------
FROM golang:1.26-bookworm AS build
WORKDIR /src

# Modules first, in a layer of their own: it is rebuilt only when go.mod or
# go.sum change, not on every source edit.
COPY go.mod go.sum ./
RUN go mod download

# The source. The MNIST files (data/) and the management page (web/) are
# compiled into the binary by go:embed: nothing else has to be shipped.
COPY . .

# Static binaries (no cgo, so no libc needed), without file-system paths or
# debug symbols. healthcheck is the HEALTHCHECK probe: the final image has
# no shell, curl or wget. The nomsgpack tag leaves out Gin's MessagePack
# binding, which the API never uses (JSON only): 6 MB less binary.
RUN CGO_ENABLED=0 go build -tags nomsgpack -trimpath -ldflags="-s -w" -o /out/server ./cmd/server
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/healthcheck ./cmd/healthcheck

# An empty models directory, to be copied into the final image owned by the
# runtime user (distroless has no shell to mkdir or chown with).
RUN mkdir -p /out/models

# --- final stage: distroless static, ~2 MB -----------------------------------
# CA certificates, tzdata and /etc/passwd with the user nonroot (65532), and
# nothing else: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot

# /app and the binaries belong to root (COPY creates /app before WORKDIR
# could create it as the base image's user): the server cannot replace them.
# Only the models directory is the runtime user's.
COPY --from=build /out/server /app/server
COPY --from=build /out/healthcheck /app/healthcheck
COPY --from=build --chown=65532:65532 /out/models /app/models
WORKDIR /app

# The server reads these (docs/API.md lists every setting). PORT is replaced
# by platforms that assign one, Railway for instance; the healthcheck reads it
# too.
ENV PORT=8000 MODELS_DIR=/app/models

# Saved networks live in /app/models: mount a volume there to keep them
# (docker run -v nnserver-models:/app/models, or the compose file). There is
# deliberately no VOLUME instruction: Railway refuses to build Dockerfiles
# that have one ("use Railway Volumes"), and a VOLUME would only create an
# anonymous volume nobody finds again.

EXPOSE 8000

# The numeric id of distroless's nonroot user, so that Kubernetes'
# runAsNonRoot can verify it (it refuses a user given by name).
USER 65532:65532

# GET /api/status on $PORT, 3 s timeout: exit 0 when it answers 200 "online".
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/app/healthcheck"]

# SIGTERM (docker stop) shuts down gracefully: running jobs stop, their last
# finished epoch is already saved.
ENTRYPOINT ["/app/server"]
