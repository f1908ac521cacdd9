import { test, type TestContext } from 'node:test'
import { join } from 'node:path'
import { blocksOf, checkBlocks, docBlocks, type BlockError } from './helpers/docs-blocks.js'

/**
 * Every ```ts / ```js block of README.md and docs/*.md type-checks, strict,
 * against the built package (npm test builds it first), as a user pasting
 * it would compile it; the runnable ones are also run as pasted
 * (readme-example.test.ts). Fragments say what they take from their context
 * (see test/helpers/docs-blocks.ts).
 */

const root = join(__dirname, '..', '..', '..')
// Inside the package, so that 'fastify-hangup' resolves to it by name.
const dir = join(root, 'dist', 'test', 'docs-blocks')

const blocks = docBlocks(root)
let errors: BlockError[] | null = null

function errorsOf (page: string): string[] {
  errors ??= checkBlocks(blocks, join(dir, 'pages'))
  return errors.filter((error) => error.block.page === page).map((error) => error.message)
}

for (const page of [...new Set(blocks.map((block) => block.page))]) {
  test(`the code blocks of ${page} type-check (strict)`, (t: TestContext) => {
    t.assert.deepStrictEqual(errorsOf(page), [])
  })
}

test('the pages checked include the README and every docs page with code', (t: TestContext) => {
  const pages = new Set(blocks.map((block) => block.page))
  for (const page of ['README.md', 'docs/autobind.md', 'docs/cluster.md', 'docs/crashes.md', 'docs/production.md']) {
    t.assert.ok(pages.has(page), page)
  }
})

// The checker must fail where a user's compiler would: the README's fan-out
// example as it was (it shadowed `orders`), an untyped error under strict,
// a possibly-undefined supervisor, a fragment name nobody declared.
test('the checker reports what strict TypeScript reports, naming the page, block and line', (t: TestContext) => {
  const page = [
    'Text.',
    '',
    '<!-- fragment: app request -->',
    '```js',
    "app.get('/profile', async (req) => {",
    '  const [user, orders] = await Promise.all([',
    // eslint-disable-next-line no-template-curly-in-string -- the markdown's own template literal
    '    request(`${orders}/mine`, { signal: req.signal }).then((r) => r.body.json())',
    '  ])',
    '  return { user, orders }',
    '})',
    '```',
    '',
    '<!-- fragment: app hangup -->',
    '```js',
    'await app.register(hangup, { fatal: { onFatal: (error) => console.error(error.message) } })',
    '```',
    '',
    '<!-- fragment: options -->',
    '```ts',
    "import { startCluster } from 'fastify-hangup/cluster'",
    'const supervisor = await startCluster(options)',
    'supervisor.stats()',
    '```',
    '',
    '<!-- type: HangupStats -->',
    '```js',
    '{ inflight: 3 }',
    '```'
  ].join('\n')
  const messages = checkBlocks(blocksOf('synthetic.md', page), join(dir, 'synthetic')).map((error) => error.message)
  // A value's error is reported at its fence (the line that types it).
  t.assert.ok(messages.some((m) => m.startsWith('synthetic.md block 1 (line 7): TS2448 ')), messages.join('\n'))
  t.assert.ok(messages.some((m) => m.startsWith('synthetic.md block 2 (line 15): TS18046 ')), messages.join('\n'))
  t.assert.ok(messages.some((m) => m.startsWith('synthetic.md block 3 (line 22): TS18048 ')), messages.join('\n'))
  t.assert.ok(messages.some((m) => m.startsWith('synthetic.md block 4 (line 26): TS2')), messages.join('\n'))
  t.assert.throws(() => checkBlocks(blocksOf('names.md', '<!-- fragment: nobody -->\n```js\nnobody()\n```\n'), join(dir, 'names')), /names\.md block 1 \(line 2\): fragment name "nobody" has no type/)
})
