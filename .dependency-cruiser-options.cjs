/**
 * "Options before the engine" (docs/architecture.md), checked in `npm test`: the modules that
 * declare and parse a command's options load neither tfjs, sharp, Arrow nor the image codecs, so
 * a wrong flag is refused at once. Type-only imports are erased by the build, so this cruise
 * leaves them out (`tsPreCompilationDeps: false`), which the layer rules' cruise cannot.
 */
module.exports = {
  forbidden: [
    {
      name: 'options-before-the-engine',
      comment: "a command's options module reaches an engine or codec package at run time",
      severity: 'error',
      from: { path: '^pipelines/([a-z-]+-options|train-schema|command-schema|recipe)\\.ts$' },
      to: { path: 'node_modules/(@tensorflow|sharp|apache-arrow|parquet-wasm|@napi-rs)', reachable: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|scratch|runs)/' },
    tsPreCompilationDeps: false,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
