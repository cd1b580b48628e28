// Entry point of the kernel module: re-exports every op family.
export * from "./elementwise";
