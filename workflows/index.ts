/** Every workflow the pipeline worker registers (the bundle's entry point). */
export { pipeline } from './pipeline';
