// Only the parts of brittle that crosscast's tests call.
declare module 'brittle' {
  interface TestOptions { timeout?: number, skip?: boolean, todo?: boolean, solo?: boolean }
  interface Assert extends Promise<boolean> {
    plan (n: number): void
    end (): void
    pass (message?: string): void
    fail (message?: string): void
    ok (value: unknown, message?: string): void
    absent (value: unknown, message?: string): void
    is (actual: unknown, expected: unknown, message?: string): void
    not (actual: unknown, expected: unknown, message?: string): void
    alike (actual: unknown, expected: unknown, message?: string): void
    unlike (actual: unknown, expected: unknown, message?: string): void
    exception (fn: (() => unknown) | Promise<unknown>, expected?: RegExp | Error | ErrorConstructor, message?: string): Promise<void> & void
    execution (fn: (() => unknown) | Promise<unknown>, message?: string): Promise<void> & void
    comment (...message: unknown[]): void
    timeout (ms: number): void
    teardown (fn: () => unknown, opts?: { order?: number }): void
    tmp (): Promise<string>
    test (name: string, fn: (t: Assert) => unknown): Promise<boolean>
    test (name: string, opts: TestOptions, fn: (t: Assert) => unknown): Promise<boolean>
    test (name?: string, opts?: TestOptions): Assert
  }
  function test (name: string, fn: (t: Assert) => unknown): Promise<boolean>
  function test (name: string, opts: TestOptions, fn: (t: Assert) => unknown): Promise<boolean>
  function test (name?: string, opts?: TestOptions): Assert
  export function skip (name: string, fn: (t: Assert) => unknown): Promise<boolean>
  export function solo (name: string, fn: (t: Assert) => unknown): Promise<boolean>
  export function configure (opts: { timeout?: number, bail?: boolean, solo?: boolean }): void
  export { test, type Assert, type TestOptions }
  export default test
}
