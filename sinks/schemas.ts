/**
 * The tables densestream writes, as Arrow schemas. Stable: a change bumps the version in the
 * file's key-value metadata (`densestream.schema` = `features/1`, …), which readers check.
 *
 * | table | columns |
 * |---|---|
 * | features (grid) | `id` utf8, `label` int32?, `embedding` FixedSizeList<f32>[d], `dense` FixedSizeList<f32>[h·w·c] (row-major h, w, c) |
 * | features (cells) | `id` utf8, `label` int32?, `y` int32, `x` int32, `vector` FixedSizeList<f32>[c] |
 * | masks | `id` utf8, `height` int32, `width` int32, `mask` binary (PNG, 0/255), `method` utf8 |
 * | views | `id` utf8, `label` int32?, `view` int32, `box` FixedSizeList<f32>[4] (x0, y0, x1, y1 in source pixels), `flipped` bool, `image` binary, `mask` binary? (PNG) |
 *
 * Each builder takes whole columns (typed arrays), so a batch of rows costs its data and no
 * per-row objects.
 */
import * as arrow from 'apache-arrow';

export const SCHEMA_KEY = 'densestream.schema';
export const SCHEMA_VERSION = 1;
export type TableKind = 'features' | 'feature-cells' | 'masks' | 'views';

function vectorType(size: number): arrow.FixedSizeList<arrow.Float32> {
  return new arrow.FixedSizeList(size, new arrow.Field('item', new arrow.Float32(), false));
}

function schema(kind: TableKind, fields: arrow.Field[], extra: Record<string, string | number> = {}): arrow.Schema {
  const metadata = new Map<string, string>([[SCHEMA_KEY, `${kind}/${SCHEMA_VERSION}`]]);
  for (const [k, v] of Object.entries(extra)) metadata.set(k, String(v));
  return new arrow.Schema(fields, metadata);
}

/** Dense feature grid of `h × w` cells of `c` channels, and a pooled embedding of `d`. */
export interface FeatureShape {
  embedding: number;
  gridH: number;
  gridW: number;
  channels: number;
}

export function featuresSchema(s: FeatureShape): arrow.Schema {
  return schema(
    'features',
    [
      new arrow.Field('id', new arrow.Utf8(), false),
      new arrow.Field('label', new arrow.Int32(), true),
      new arrow.Field('embedding', vectorType(s.embedding), false),
      new arrow.Field('dense', vectorType(s.gridH * s.gridW * s.channels), false),
    ],
    { grid_h: s.gridH, grid_w: s.gridW, channels: s.channels },
  );
}

export function featureCellsSchema(s: FeatureShape): arrow.Schema {
  return schema(
    'feature-cells',
    [
      new arrow.Field('id', new arrow.Utf8(), false),
      new arrow.Field('label', new arrow.Int32(), true),
      new arrow.Field('y', new arrow.Int32(), false),
      new arrow.Field('x', new arrow.Int32(), false),
      new arrow.Field('vector', vectorType(s.channels), false),
    ],
    { grid_h: s.gridH, grid_w: s.gridW, channels: s.channels },
  );
}

export function masksSchema(): arrow.Schema {
  return schema('masks', [
    new arrow.Field('id', new arrow.Utf8(), false),
    new arrow.Field('height', new arrow.Int32(), false),
    new arrow.Field('width', new arrow.Int32(), false),
    new arrow.Field('mask', new arrow.Binary(), false),
    new arrow.Field('method', new arrow.Utf8(), false),
  ]);
}

export function viewsSchema(imageFormat: string): arrow.Schema {
  return schema(
    'views',
    [
      new arrow.Field('id', new arrow.Utf8(), false),
      new arrow.Field('label', new arrow.Int32(), true),
      new arrow.Field('view', new arrow.Int32(), false),
      new arrow.Field('box', vectorType(4), false),
      new arrow.Field('flipped', new arrow.Bool(), false),
      new arrow.Field('image', new arrow.Binary(), false),
      new arrow.Field('mask', new arrow.Binary(), true),
    ],
    { image_format: imageFormat },
  );
}

/** A FixedSizeList<f32>[size] column over `values` (rows × size, row-major), without copying. */
export function vectorColumn(values: Float32Array, size: number): arrow.Data<arrow.FixedSizeList<arrow.Float32>> {
  const rows = values.length / size;
  if (!Number.isInteger(rows)) throw new Error(`vectorColumn: ${values.length} values is not a multiple of ${size}`);
  const child = arrow.makeData({ type: new arrow.Float32(), length: values.length, data: values });
  return arrow.makeData({ type: vectorType(size), length: rows, nullCount: 0, child });
}

/** Columns by name, checked against `schema` (names, order, lengths) into a one-batch table. */
export function tableOf(schemaOf: arrow.Schema, columns: Record<string, arrow.Data | arrow.Vector>): arrow.Table {
  const data = schemaOf.fields.map((f) => {
    const c = columns[f.name];
    if (!c) throw new Error(`table: column ${f.name} missing`);
    return c instanceof arrow.Vector ? (c.data[0] as arrow.Data) : c;
  });
  const length = data[0]?.length ?? 0;
  const bad = data.findIndex((d) => d.length !== length);
  if (bad >= 0) throw new Error(`table: column ${schemaOf.fields[bad]?.name} has ${data[bad]?.length} rows, expected ${length}`);
  const struct = arrow.makeData({ type: new arrow.Struct(schemaOf.fields), length, nullCount: 0, children: data });
  return new arrow.Table(schemaOf, [new arrow.RecordBatch(schemaOf, struct)]);
}

/** Utf8 / Int32 (null for `undefined`) / Bool / Binary columns from plain arrays. */
export const strings = (xs: readonly string[]) => arrow.vectorFromArray(xs as string[], new arrow.Utf8());
export const int32s = (xs: ReadonlyArray<number | undefined | null>) =>
  arrow.vectorFromArray(
    xs.map((x) => x ?? null),
    new arrow.Int32(),
  );
export const bools = (xs: readonly boolean[]) => arrow.vectorFromArray(xs as boolean[], new arrow.Bool());
export const binaries = (xs: ReadonlyArray<Uint8Array | null>) => arrow.vectorFromArray(xs as Uint8Array[], new arrow.Binary());

/** The kind and version a file's schema declares, or an error naming what was found. */
export function checkSchema(s: arrow.Schema, kind: TableKind, where: string): void {
  const declared = s.metadata.get(SCHEMA_KEY);
  if (declared !== `${kind}/${SCHEMA_VERSION}`) {
    throw new Error(`${where}: expected a densestream ${kind}/${SCHEMA_VERSION} table, found ${declared ?? 'no densestream schema'}`);
  }
}
