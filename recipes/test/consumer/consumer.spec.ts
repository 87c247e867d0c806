/** The public API is usable under `tsc --strict` and hands the consumer no `any`. */
import { join } from 'node:path';
import ts from 'typescript';

describe('recipes public API for a strict consumer', () => {
  it('consumer.ts compiles under --strict and no expression in it is typed any', () => {
    const configPath = join(__dirname, 'tsconfig.json');
    const parsed = ts.getParsedCommandLineOfConfigFile(configPath, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(String(d.messageText)); } });
    if (!parsed) throw new Error('no tsconfig');
    expect(parsed.options.strict).toBe(true);
    const program = ts.createProgram(parsed.fileNames, parsed.options);
    const file = program.getSourceFile(join(__dirname, 'consumer.ts'))!;
    const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.file === file || !d.file);
    expect(diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))).toEqual([]);

    const checker = program.getTypeChecker();
    const anys: string[] = [];
    const visit = (node: ts.Node) => {
      // imports and type annotations name types, not values: only what the code computes is checked
      if (ts.isImportDeclaration(node) || ts.isTypeNode(node)) return;
      if (ts.isExpression(node) || ts.isIdentifier(node)) {
        const t = checker.getTypeAtLocation(node);
        if (t.flags & ts.TypeFlags.Any) {
          const { line } = file.getLineAndCharacterOfPosition(node.getStart(file));
          anys.push(`${line + 1}: ${node.getText(file)}`);
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
    expect(anys).toEqual([]);
    expect(file.getText()).not.toMatch(/\bany\b/);
  }, 120_000);
});
