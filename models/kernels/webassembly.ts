/**
 * The slice of the WebAssembly JS API the kernels use, typed here: the project's `lib`
 * (ES2022, no DOM) and @types/node 20 do not declare the `WebAssembly` namespace.
 */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}
export interface WasmModule {
  readonly __wasmModule: unique symbol;
}
export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}
interface WasmApi {
  Memory: abstract new (...args: never[]) => WasmMemory;
  compile(bytes: Uint8Array): Promise<WasmModule>;
  instantiate(module: WasmModule, imports: Record<string, Record<string, unknown>>): Promise<WasmInstance>;
}

export const webAssembly = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
