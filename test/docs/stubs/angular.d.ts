// Just enough of Angular's public API for tsc to check the docs' snippets
// (docs/WEBSOCKET.md) without installing Angular: the signatures the
// snippets use, as Angular 20 declares them, simplified. What a snippet
// does with rxjs and socket.io-client is checked against the real packages
// (package-lock.json). Add a declaration here when a snippet starts using
// another Angular API.

declare module '@angular/core' {
  export interface Type<T> extends Function {
    new (...args: any[]): T;
  }
  export interface AbstractType<T> extends Function {
    prototype: T;
  }
  export class InjectionToken<T> {
    constructor(desc: string, options?: { providedIn?: 'root' | 'platform' | 'any' | null; factory?: () => T });
    protected _desc: string;
    readonly ɵprov: unknown;
  }
  export type ProviderToken<T> = Type<T> | AbstractType<T> | InjectionToken<T>;

  export function inject<T>(token: ProviderToken<T>): T;
  export function inject<T>(token: ProviderToken<T>, options: { optional: true }): T | null;

  export interface InjectableOptions {
    providedIn?: Type<any> | 'root' | 'platform' | 'any' | null;
  }
  export function Injectable(options?: InjectableOptions): ClassDecorator;

  export interface ComponentOptions {
    selector?: string;
    standalone?: boolean;
    imports?: (Type<any> | readonly any[])[];
    template?: string;
    templateUrl?: string;
    styles?: string | string[];
    styleUrl?: string;
    providers?: any[];
  }
  export function Component(options: ComponentOptions): ClassDecorator;

  export interface OnInit {
    ngOnInit(): void;
  }
  export interface OnDestroy {
    ngOnDestroy(): void;
  }

  export type Signal<T> = (() => T) & { readonly [SIGNAL]: unknown };
  const SIGNAL: unique symbol;
  export interface InputSignal<T> extends Signal<T> {}
  export interface InputOptions<T> {
    alias?: string;
    transform?: (v: any) => T;
  }
  export const input: {
    <T>(): InputSignal<T | undefined>;
    <T>(initialValue: T, opts?: InputOptions<T>): InputSignal<T>;
    required<T>(opts?: InputOptions<T>): InputSignal<T>;
  };
}

declare module '@angular/common' {
  import { Observable } from 'rxjs';
  export class AsyncPipe {
    transform<T>(obj: Observable<T> | Promise<T> | null | undefined): T | null;
  }
  export class DecimalPipe {
    transform(value: number | string | null | undefined, digitsInfo?: string, locale?: string): string | null;
  }
  export class PercentPipe {
    transform(value: number | string | null | undefined, digitsInfo?: string, locale?: string): string | null;
  }
}

declare module '@angular/common/http' {
  import { Observable } from 'rxjs';
  type Headers = { [header: string]: string | string[] };
  type Params = { [param: string]: string | number | boolean | ReadonlyArray<string | number | boolean> };
  export interface Options {
    headers?: Headers;
    params?: Params;
    withCredentials?: boolean;
  }
  export class HttpClient {
    get<T>(url: string, options?: Options): Observable<T>;
    post<T>(url: string, body: any | null, options?: Options): Observable<T>;
    delete<T>(url: string, options?: Options): Observable<T>;
  }
  export function provideHttpClient(...features: unknown[]): unknown;
}
