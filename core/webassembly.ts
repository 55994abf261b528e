/**
 * The slice of the WebAssembly JS API densestream uses (the backend's kernels, the saliency
 * maps' pixel loops), typed here: the project's `lib` (ES2022, no DOM) and @types/node 20 do not
 * declare the `WebAssembly` namespace.
 */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  /** Grows by `pages` of 64 KiB; returns the previous size in pages. */
  grow(pages: number): number;
}
export interface WasmModule {
  readonly __wasmModule: unique symbol;
}
export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}
interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  /** Compiles synchronously: Node allows it on any thread, for a module of any size. */
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => WasmInstance;
  compile(bytes: Uint8Array): Promise<WasmModule>;
  /** Whether this runtime would compile `bytes`: false for a feature it lacks (relaxed SIMD on Node 20). */
  validate(bytes: Uint8Array): boolean;
  instantiate(module: WasmModule, imports: Record<string, Record<string, unknown>>): Promise<WasmInstance>;
}

export const webAssembly = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
