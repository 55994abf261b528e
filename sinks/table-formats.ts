/** The table file formats and Parquet codecs a job can write, free of Arrow and Parquet code so options can name them. */
export const TABLE_FORMATS = ['parquet', 'arrow'] as const;
export type TableFormat = (typeof TABLE_FORMATS)[number];
export const PARQUET_CODECS = ['zstd', 'snappy', 'lz4', 'none'] as const;
export type ParquetCodec = (typeof PARQUET_CODECS)[number];
