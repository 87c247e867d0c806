// The suite reaches the recipes through their public surface only (plus the key helper).
export * from '@nestcd/recipes';
export { bytes } from '../../src/keys';
