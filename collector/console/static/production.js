// The vendored ES modules read process.env.NODE_ENV, which a bundler replaces at build time; the
// console ships them unbundled, so this module (imported before them) answers "production".
if (typeof globalThis.process === "undefined") {
  globalThis.process = { env: { NODE_ENV: "production" } };
}
