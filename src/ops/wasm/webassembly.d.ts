// The WebAssembly JS API surface the kernels use. tsconfig's lib (ES2023, no DOM) does not declare
// it and @types/node does not either; these match the W3C WebAssembly JS API.
declare namespace WebAssembly {
  interface MemoryDescriptor {
    initial: number;
    maximum?: number;
    shared?: boolean;
  }
  class Memory {
    constructor(descriptor: MemoryDescriptor);
    readonly buffer: ArrayBuffer | SharedArrayBuffer;
    grow(delta: number): number;
  }
  class Module {
    constructor(bytes: BufferSource);
  }
  class Instance {
    constructor(module: Module, imports?: Record<string, Record<string, unknown>>);
    readonly exports: Record<string, unknown>;
  }
  type BufferSource = ArrayBufferView | ArrayBuffer;
  function validate(bytes: BufferSource): boolean;
  interface WebAssemblyInstantiatedSource {
    module: Module;
    instance: Instance;
  }
  type Imports = Record<string, Record<string, unknown>>;
  function instantiate(bytes: BufferSource, imports?: Imports): Promise<WebAssemblyInstantiatedSource>;
  function compile(bytes: BufferSource): Promise<Module>;
}
