/**
 * The layer rules of docs/architecture.md, checked in `npm test`: each folder imports only the
 * folders its row allows, and no import loop exists (type-only imports included).
 */
const LAYERS = ['core', 'datasets', 'operators', 'models', 'methods', 'positives', 'train', 'sinks', 'pipelines', 'bench', 'test'];
/** folder → the other folders of densestream it may import (core/ is every folder's, so not listed). */
const MAY_IMPORT = {
  core: [],
  datasets: [],
  operators: ['datasets'],
  models: [],
  methods: ['models'],
  // datasets/ for the random-access reads positives are fetched by (a finite source's readById)
  positives: ['datasets', 'operators', 'models', 'methods'],
  train: ['models', 'methods', 'operators', 'sinks'],
  sinks: [],
};

const layerRules = Object.entries(MAY_IMPORT).map(([layer, allowed]) => {
  const allowedHere = new Set([layer, 'core', ...allowed]);
  const forbidden = LAYERS.filter((l) => !allowedHere.has(l));
  return {
    name: `${layer}-layer`,
    comment: `${layer}/ may import ${['core', ...allowed].filter((l) => l !== layer).join(', ') || 'nothing of densestream'} (docs/architecture.md)`,
    severity: 'error',
    from: { path: `^${layer}/` },
    to: { path: `^(${forbidden.join('|')})/` },
  };
});

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'core-imports-nothing',
      comment: 'core/ holds the contracts every layer shares; it imports no other folder (nor index.ts)',
      severity: 'error',
      from: { path: '^core/' },
      to: { path: '^index\\.ts$' },
    },
    {
      name: 'no-circular',
      comment: 'an import loop means two files hold one concept, or a contract lives in the wrong file',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|scratch|runs|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
