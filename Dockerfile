# syntax=docker/dockerfile:1
# The hub as a small image: a static binary on distroless, as a non-root
# user. The image holds no PostgreSQL, so DATABASE_URL and HUB_ADMIN_TOKEN
# must be set; migrations are applied on start.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# adaptivestackstart=0: see HUB_LDFLAGS in the Makefile.
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w -X=runtime.godebugDefault=adaptivestackstart=0' -o /out/hub ./server

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hub /usr/local/bin/hub
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/hub"]
