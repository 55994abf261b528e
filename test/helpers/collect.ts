import { lastValueFrom, toArray, type Observable } from 'rxjs';

/** All values of a finite observable. */
export function collect<T>(source: Observable<T>): Promise<T[]> {
  return lastValueFrom(source.pipe(toArray()));
}
