import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import ts from 'typescript'

/**
 * The code blocks of README.md and docs/*.md (```ts, ```js, ```mjs, ```cjs),
 * as TypeScript source files to type-check strictly against the built
 * package: what a user pastes must compile.
 *
 * A block is a whole module unless an HTML comment right before it says
 * otherwise (invisible on GitHub and npm):
 * - `<!-- fragment: app request -->`: the block is a piece of an app; the
 *   names listed come from its context, typed as in FRAGMENT_NAMES;
 * - `<!-- type: HangupStats -->`: the block is a value of that type, exported
 *   by fastify-hangup.
 * Pages added to docs/ are picked up as they are.
 */

export interface DocBlock {
  /** The page, relative to the repository: README.md, docs/crashes.md. */
  page: string
  /** 1-based, among the page's checked blocks. */
  index: number
  /** The line of the opening fence in the page (1-based). */
  line: number
  language: 'ts' | 'js'
  code: string
  fragment: string[] | null
  valueType: string | null
}

/** The types of the names a fragment may take from its context. */
export const FRAGMENT_NAMES: Record<string, string> = {
  app: "import('fastify').FastifyInstance",
  fastify: "import('fastify').FastifyInstance",
  hangup: "typeof import('fastify-hangup').default",
  request: "typeof import('undici').request",
  upstream: 'string',
  usersApi: 'string',
  ordersApi: 'string',
  buildReport: '(signal: AbortSignal) => Promise<unknown>',
  metrics: '{ abandoned: { inc (labels: Record<string, string>): void } }',
  orders: '{ create (body: unknown): Promise<{ id: string }> }',
  audit: '{ record (order: { id: string }): Promise<void> }',
  options: "import('fastify-hangup/cluster').StartClusterOptions"
}

const FENCE = /^```(ts|typescript|js|javascript|mjs|cjs)\s*$/
const MARKER = /^<!--\s*(fragment|type):\s*(.*?)\s*-->\s*$/

/** Every checked block of one page's text. */
export function blocksOf (page: string, text: string): DocBlock[] {
  const lines = text.split('\n')
  const blocks: DocBlock[] = []
  for (let i = 0; i < lines.length; i++) {
    const fence = FENCE.exec(lines[i])
    if (fence === null) continue
    const end = lines.indexOf('```', i + 1)
    if (end === -1) throw new Error(`${page}:${i + 1}: a code block that never closes`)
    const marker = i > 0 ? MARKER.exec(lines[i - 1]) : null
    blocks.push({
      page,
      index: blocks.length + 1,
      line: i + 1,
      language: fence[1].startsWith('t') ? 'ts' : 'js',
      code: lines.slice(i + 1, end).join('\n'),
      fragment: marker?.[1] === 'fragment' ? marker[2].split(/[\s,]+/).filter(Boolean) : null,
      valueType: marker?.[1] === 'type' ? marker[2] : null
    })
    i = end
  }
  return blocks
}

/** README.md and every docs/*.md of the repository at `root`. */
export function docBlocks (root: string): DocBlock[] {
  const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).sort().map((name) => `docs/${name}`)]
  return pages.flatMap((page) => blocksOf(page, readFileSync(join(root, page), 'utf8')))
}

export interface BlockSource {
  /** A file name that says the module system: .mts/.cts for TypeScript, .mjs/.cjs for JavaScript. */
  fileName: string
  text: string
  /** Lines added before the block's code. */
  offset: number
}

/** The block as a source file: its fragment's names declared first, or its value typed. */
export function blockSource (block: DocBlock): BlockSource {
  const commonJs = /\brequire\(|\bmodule\.exports\b/.test(block.code) && !/^\s*(import|export)\s/m.test(block.code)
  const extension = (commonJs ? 'c' : 'm') + (block.language === 'ts' ? 'ts' : 'js')
  const base = `${block.page.replace(/\W+/g, '-')}-${block.index}.${extension}`
  const prelude = block.fragment?.map((name) => declare(block, name, typeOf(block, name))) ?? []
  if (block.valueType !== null) {
    const type = `import('fastify-hangup').${block.valueType}`
    prelude.push(block.language === 'ts' ? `export const value: ${type} = (` : `/** @type {${type}} */\nexport const value = (`)
    return { fileName: base, text: [...prelude, block.code, ')', ''].join('\n'), offset: prelude.join('\n').split('\n').length }
  }
  return { fileName: base, text: [...prelude, block.code, ''].join('\n'), offset: prelude.length === 0 ? 0 : prelude.join('\n').split('\n').length }
}

function typeOf (block: DocBlock, name: string): string {
  const type = FRAGMENT_NAMES[name]
  if (type === undefined) throw new Error(`${block.page} block ${block.index} (line ${block.line}): fragment name "${name}" has no type in FRAGMENT_NAMES`)
  return type
}

function declare (block: DocBlock, name: string, type: string): string {
  return block.language === 'ts'
    ? `declare const ${name}: ${type}`
    : `const ${name} = /** @type {${type}} */ (/** @type {unknown} */ (undefined))`
}

/** Strict, and the way a current Node project resolves packages (package.json `exports`). */
export const CHECK_OPTIONS: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  allowJs: true,
  checkJs: true,
  skipLibCheck: true,
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2022.d.ts'],
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  moduleDetection: ts.ModuleDetectionKind.Force,
  types: ['node']
}

export interface BlockError {
  block: DocBlock
  /** `README.md block 3 (line 97): TS2448 Block-scoped variable 'orders' used before its declaration.` */
  message: string
}

/**
 * Type-checks every block in one program; the files are written to `dir`,
 * which must be inside the package (its name then resolves to the built
 * package, as `import 'fastify-hangup'` does for a user).
 */
export function checkBlocks (blocks: DocBlock[], dir: string, options: ts.CompilerOptions = CHECK_OPTIONS): BlockError[] {
  mkdirSync(dir, { recursive: true })
  const files = new Map<string, { block: DocBlock, source: BlockSource }>()
  for (const block of blocks) {
    const source = blockSource(block)
    const fileName = join(dir, source.fileName)
    writeFileSync(fileName, source.text)
    files.set(fileName, { block, source })
  }
  const program = ts.createProgram([...files.keys()], options)
  return ts.getPreEmitDiagnostics(program).flatMap((diagnostic) => {
    const entry = diagnostic.file === undefined ? undefined : files.get(diagnostic.file.fileName)
    if (entry === undefined || diagnostic.file === undefined) {
      return [{ block: blocks[0], message: `(no block) TS${diagnostic.code} ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}` }]
    }
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0)
    const pageLine = entry.block.line + 1 + line - entry.source.offset
    return [{
      block: entry.block,
      message: `${entry.block.page} block ${entry.block.index} (line ${pageLine}): TS${diagnostic.code} ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`
    }]
  })
}
