/**
 * densestream's library API. Each folder is one role of the pipeline (see DESIGN.md);
 * this file re-exports what a user composes.
 */
export {
  BACKEND_CHOICES,
  parseBackendChoice,
  selectBackend,
  type BackendChoice,
  type BackendOptions,
  type BackendSelection,
} from './models/backend.js';
export {
  conv2dFilterGradient,
  conv2dInputGradient,
  convGeometry,
  installFastConvGradients,
  type ConvGeometry,
  type Conv2DAttrs,
} from './models/conv-gradients.js';
export { checkWasmThreads, defaultWasmThreads, registerThreadedWasm, wasmThreadCount } from './models/wasm-threads.js';
