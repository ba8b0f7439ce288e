export * from './config';
export * from './embedder';
export * from './errors';
export * from './filters';
export * from './memory-activities';
export * from './point-id';
export * from './store';
