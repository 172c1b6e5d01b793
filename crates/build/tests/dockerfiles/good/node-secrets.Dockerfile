ARG NODE_VERSION=20
FROM node:${NODE_VERSION}-alpine AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc \
    --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --omit=dev
RUN --mount=type=secret,id=api_token,env=API_TOKEN,required=true \
    --mount=type=ssh \
    --network=none \
    ./fetch-private.sh

FROM node:${NODE_VERSION}-alpine
LABEL org.opencontainers.image.title="my app" \
      org.opencontainers.image.version=1.0 "quoted key"=value
ENV NODE_ENV production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --link --exclude=*.md --exclude=test/ . .
EXPOSE 3000/tcp
CMD node server.js
