# mailgate container image: build stage compiles TypeScript; the runtime stage has only the
# compiled code, production dependencies and the config directory, and runs as user "node".
# Ports below 1024: publish host ports onto the unprivileged ones (-p 143:1143), or give the
# container net.ipv4.ip_unprivileged_port_start=0 (see compose.yaml) and listen on 143.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
# The image has Node 24 already: skip the pinned node-linux-* binaries (optional dependencies).
RUN npm install --ignore-scripts --no-audit --no-fund --omit=optional
COPY src ./src
COPY scripts ./scripts
RUN npx tsc -p tsconfig.json && node scripts/copy-assets.mjs && npm prune --omit=dev --omit=optional

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config ./config
USER node
EXPOSE 1143 1993 1110 1995 1587 1465 9925
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["--config", "/etc/mailgate/mailgate.yaml"]
